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
from swp.errors import ConfigError, RunError, RunInterrupted, one_line
from swp.infra.run_folder import record_failure
from swp.infra.runtime import threads_restored
from swp.infra.signals import sweep_stop_requested
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
    returns the results dict that results.json holds. Errors propagate as exceptions. The
    caller's torch thread count is given back afterwards (`threads` is the run's setting)."""
    with threads_restored():
        return launch(cfg, context())


def main(cfg: DictConfig) -> float | None:
    """What `train.py` calls: `run` under the failure policy. Returns the headline metric, so
    Hydra sweepers that optimise a return value can use it."""
    if sweep_stop_requested():  # a parallel sweep asked to stop before this job began
        print("not started: the sweep was asked to stop; re-run the sweep's command to run it", file=sys.stderr)
        return None
    try:
        results = run(cfg)
    except RunInterrupted as exc:
        note = _record_failure(cfg, exc)
        print(f"stopped: {one_line(exc)}{note}", file=sys.stderr, flush=True)
        dist_env.leave_together()  # under torchrun: every rank has said where it stopped
        if sweep_stop_requested():
            return None  # in a worker: the sweep's parent exits with the signal once every job is back
        sys.exit(128 + exc.signum)  # also ends a sweep: the user or the cluster asked to stop
    except (ConfigError, RunError) as exc:
        note = _record_failure(cfg, exc)
        print(f"error: {one_line(exc)}{note}", file=sys.stderr)
        if in_multirun():
            return None  # the sweep goes on; its summary lists this job from error.json
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except Exception as exc:
        known = environment_failure(exc)
        note = _record_failure(cfg, exc)
        if known is not None:  # the machine's, not the code's: one line, like a RunError
            print(f"error: {known}{note}", file=sys.stderr)
            if in_multirun():
                return None
            sys.exit(1)
        if in_multirun():
            traceback.print_exc()
            return None
        raise
    except BaseException as exc:
        _record_failure(cfg, exc)
        raise
    return headline_value(results)


def environment_failure(exc: BaseException) -> str | None:
    """One line for a failure of the machine rather than of the code (a file that cannot be
    written or read, memory that cannot be allocated), found anywhere in the cause chain (Hydra
    wraps a part's errors), or None for anything else: a bug keeps its traceback."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            where = f" ({seen.filename})" if seen.filename else ""
            return (f"{seen.strerror or one_line(seen)}{where}; fix that (disk space, permissions), then re-run the "
                    "same command: a run resumes from its last checkpoint")
        text = str(seen)
        if isinstance(seen, MemoryError) or (isinstance(seen, RuntimeError) and any(
                m in text for m in ("out of memory", "can't allocate memory", "not enough memory"))):
            return (f"out of memory ({one_line(seen, 200)}); lower what fills it (model size, dataset.batch_size, "
                    "pruner.window, pruner.calibration_batches) or use a machine with more memory")
        seen = seen.__cause__ or seen.__context__
    return None


def _record_failure(cfg: DictConfig, exc: BaseException) -> str:
    """Leaves error.json; returns what the error line adds when it could not be written."""
    folder = cfg.get("resume") or cfg.get("output_dir") or context().default_dir
    reason = record_failure(Path(folder), exc) if folder else None
    return f" (error.json could not be written: {reason})" if reason else ""


def hydra_app():
    """`train.py`'s Hydra application, for running the CLI in-process (tests, notebooks):
    ``hydra_app()()`` parses ``sys.argv`` exactly as ``python train.py`` does."""
    import hydra

    from swp.config import CONF_DIR

    return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(main)
