"""The failure policy of a job, in one place, and the only code that asks Hydra for its state.

Exit codes: 0 finished; 2 bad input (`ConfigError`: nothing was trained or written except
`error.json`); 1 a known run failure (`RunError`: non-finite loss, failed write, sparsity
drift); 128 + signal when SIGTERM / SIGINT / the SLURM preemption signal stopped the run after
a checkpoint. Every failure leaves `error.json` in the run folder (never `results.json`).
Inside a `-m` sweep a failing job returns instead of exiting, so the other jobs run; the sweep
summary lists it from its `error.json`. A signal ends the whole sweep: someone asked to stop.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig

import swp.resolvers  # noqa: F401  (the config files' ${swp.*} arithmetic)
from swp.distributed import env as dist_env
from swp.errors import ConfigError, RunError, RunInterrupted
from swp.infra.run_folder import record_failure
from swp.launch import Context, launch
from swp.results import headline_value


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def context() -> Context:
    """Hydra's run folder and the chosen options, as plain data (empty outside a Hydra job)."""
    state = _hydra()
    if state is None:
        return Context()
    from omegaconf import OmegaConf

    # Composed configs (tests, notebooks) have no run folder: they must give output_dir.
    default_dir = OmegaConf.select(state, "runtime.output_dir", throw_on_missing=False)
    return Context(default_dir=default_dir, choices=dict(state.runtime.choices))


def in_multirun() -> bool:
    """Whether this job is one of a -m sweep (a failure must not stop the other jobs)."""
    from hydra.types import RunMode

    state = _hydra()
    return state is not None and state.mode == RunMode.MULTIRUN


def run(cfg: DictConfig) -> dict:
    """The library API: one run from a composed config (see `swp.config.compose_run_config`);
    returns the results dict that results.json holds. Errors propagate as exceptions."""
    return launch(cfg, context())


def main(cfg: DictConfig) -> float | None:
    """What `train.py` calls: `run` under the failure policy. Returns the headline metric, so
    Hydra sweepers that optimise a return value can use it."""
    try:
        results = run(cfg)
    except RunInterrupted as exc:
        _record_failure(cfg, exc)
        print(f"stopped: {exc}", file=sys.stderr, flush=True)
        dist_env.leave_together()  # under torchrun: every rank has said where it stopped
        sys.exit(128 + exc.signum)  # also ends a sweep: the user or the cluster asked to stop
    except (ConfigError, RunError) as exc:
        _record_failure(cfg, exc)
        print(f"error: {exc}", file=sys.stderr)
        if in_multirun():
            return None  # the sweep goes on; its summary lists this job from error.json
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except Exception as exc:
        _record_failure(cfg, exc)
        if in_multirun():
            traceback.print_exc()
            return None
        raise
    except BaseException as exc:
        _record_failure(cfg, exc)
        raise
    return headline_value(results)


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    folder = cfg.get("resume") or cfg.get("output_dir") or context().default_dir
    if folder:
        record_failure(Path(folder), exc)


def hydra_app():
    """`train.py`'s Hydra application, for running the CLI in-process (tests, notebooks):
    ``hydra_app()()`` parses ``sys.argv`` exactly as ``python train.py`` does."""
    import hydra

    from swp.config import CONF_DIR

    return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(main)
