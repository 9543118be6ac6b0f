"""The one entrypoint: `python train.py pruner=swp prune_rate=0.6` (see README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from swp.errors import ConfigError, RunError, RunInterrupted  # noqa: E402
from swp.validation import validate_config  # noqa: E402


def run(cfg: DictConfig) -> dict:
    """Builds every part from the config, runs the schedule, writes the run folder.

    Returns the results dict (also written to results.json) so tests and sweepers can use it.
    """
    validate_config(cfg)
    from swp.analysis.trajectories import TrajectoryRecorder
    from swp.infra import run_folder, runtime
    from swp.infra.signals import StopRequest
    from swp.logging.base import JsonlLogger, LoggerGroup
    from swp.logging.resilient import start_backend
    from swp.pruning.nm import check_nm_target, nm_label
    from swp.training.loop import NonFiniteLossError
    from swp.training.outputs import summary_line, write_outputs
    from swp.training.pipeline import train_prune_finetune

    # Everything that can be wrong with the input is checked before training starts.
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"required setting(s) not given: {', '.join(missing)} (add e.g. {missing[0]}=... to the command)")
    prune_rate, target = runtime.check_prune_settings(cfg.prune_rate, cfg.get("target_sparsity"))
    device = runtime.resolve_device(cfg.device)
    autocast = runtime.autocast_factory(cfg.precision, device)
    ck = runtime.check_checkpoint_settings(cfg.get("checkpoint"))
    hydra_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir if not (cfg.output_dir or cfg.get("resume")) else None
    out_dir = run_folder.choose(cfg.output_dir, cfg.get("resume"), hydra_dir)
    with run_folder.lock(out_dir):  # a second run on this folder stops here with one line
        resolved = OmegaConf.to_container(cfg, resolve=True)
        store, resume, finished = run_folder.open_run(out_dir, resolved, ck["every"], ck["keep"], cfg.get("resume"))
        if finished is not None:  # e.g. a re-launched sweep: finished jobs are not trained again
            print(f"already finished with this config: {out_dir / 'results.json'}")
            return finished

        runtime.set_threads(cfg.get("threads"))
        runtime.seed_everything(cfg.seed)
        task = build("dataset", cfg.dataset)
        model = build("model", cfg.model, **task.model_kwargs()).to(device)
        pruner = build("pruner", cfg.pruner)(model=model)
        check_nm_target(pruner.nm, target)
        schedule = build("schedule", cfg.schedule)
        export = build("export", cfg.export)
        dense_cache = _dense_cache(cfg, resolved, schedule, pruner, device, out_dir)
        # A fixed sample of weights recorded at every tracking point (paper Figs. 1-2), any pruner.
        per_tensor = cfg.trajectories.per_tensor
        recorder = TrajectoryRecorder(pruner.params, per_tensor, cfg.seed) if per_tensor else None
        # The options chosen per group, top level, so dashboards can group and filter runs by them.
        logged_config = resolved | {f"{g}_choice": _choice(cfg, g) for g in ("model", "dataset", "pruner", "schedule", "experiment")}

        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
        run_folder.prepare_metrics(out_dir / "metrics.jsonl", resume)
        # W&B trouble must never stop training: a failing backend is dropped, metrics.jsonl goes on.
        backend = start_backend(lambda: build("logger", cfg.logger)(config=logged_config, out_dir=str(out_dir)), "logger")
        meter = build("energy", cfg.energy)(out_dir=str(out_dir)) if cfg.get("energy") else None
        logger = LoggerGroup(JsonlLogger(out_dir / "metrics.jsonl"), backend)
        ok = False
        try:
            with StopRequest() as stop:
                results, masks = train_prune_finetune(
                    model=model, task=task, pruner=pruner, schedule=schedule, logger=logger, device=device,
                    autocast=autocast, prune_rate=prune_rate, target_sparsity=target, seed=cfg.seed,
                    progress=_progress_enabled(cfg.progress), checkpoints=store if ck["enabled"] else None,
                    resume=resume, dense_cache=dense_cache, stop=stop, meter=meter,
                    recorder=recorder,
                )
            results = {
                "pruner": _choice(cfg, "pruner"), "model": _choice(cfg, "model"), "dataset": _choice(cfg, "dataset"),
                "schedule": _choice(cfg, "schedule"), "prune_rate": prune_rate, "target_sparsity": target,
                "seed": cfg.seed, "device": str(device), "precision": cfg.precision,
                "nm": nm_label(pruner.nm),
            } | results | (meter.results() if meter else {})
            results |= getattr(task, "extra_results", dict)()  # task-specific figures (price: mean baseline)
            # Export first (it may reload and re-evaluate the model), then the run folder's files.
            results |= export(model=model, task=task, pruned=pruner.params, out_dir=out_dir, device=device, autocast=autocast)
            write_outputs(out_dir, results, model=model, masks=masks, pruner=pruner, logger=logger, recorder=recorder,
                          show=cfg.trajectories.show, seed=cfg.seed)
            ok = True
        except NonFiniteLossError as exc:
            last = store.paths()[-1] if store.paths() else "none"
            raise NonFiniteLossError(f"{exc}; last good checkpoint: {last}") from None
        except OSError as exc:  # e.g. a full disk while writing the final artifacts
            raise RunError(f"could not write in {out_dir}: {exc.strerror or exc}; free disk space, then re-run the same command to resume") from exc
        finally:
            if meter:
                meter.close()
            logger.finish(ok)
        if not ck["keep_after_success"]:
            store.clear()  # the run folder now holds the final weights, masks and importance
        print(summary_line(results, out_dir))
        return results


def build(group: str, node, **kwargs):
    """hydra.utils.instantiate for one config group; a bad value becomes a one-line ConfigError.

    Hydra wraps errors raised inside a `_target_` in InstantiationException (nested targets
    wrap them again), so the cause chain is searched for our ConfigError; a ValueError or
    TypeError from a part's constructor (e.g. a model that does not fit the dataset) is
    reported with the group's name.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"{group}: {cause}") from None
        raise


def _dense_cache(cfg: DictConfig, resolved: dict, schedule, pruner, device, out_dir: Path):
    """The shared dense-phase cache for this run, keyed by what its dense phase depends on."""
    from swp.infra.dense_cache import DenseCache, dense_key_material, tracking_spec

    settings = cfg.get("dense_cache")
    if not settings or not settings.get("enabled", False):
        return None
    material = dense_key_material(
        model=resolved["model"], dataset=resolved["dataset"], schedule=schedule, seed=cfg.seed,
        precision=cfg.precision, device=device, threads=cfg.get("threads"),
    ) | {"trajectories": cfg.trajectories.per_tensor}  # the entry carries the recorded histories
    tracks = pruner.tracks
    return DenseCache(Path(settings.dir), material, tracking_spec(resolved["pruner"], tracks, schedule.track_every),
                      out_dir / "metrics.jsonl")


def _choice(cfg: DictConfig, group: str) -> str | None:
    """The option chosen for a config group (recorded by Hydra; None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def _progress_enabled(setting) -> bool:
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    from hydra.core.hydra_config import HydraConfig

    from swp.infra.run_folder import record_failure

    folder = cfg.get("resume") or cfg.get("output_dir")
    if not folder and HydraConfig.initialized():
        folder = HydraConfig.get().runtime.output_dir
    if folder:
        record_failure(Path(folder), exc)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        results = run(cfg)
    except RunInterrupted as exc:
        _record_failure(cfg, exc)
        print(f"stopped: {exc}", file=sys.stderr)
        sys.exit(128 + exc.signum)  # also ends a sweep: the user or the cluster asked to stop
    except (ConfigError, RunError) as exc:
        _record_failure(cfg, exc)
        print(f"error: {exc}", file=sys.stderr)
        if _in_multirun():
            return None  # the sweep goes on; its summary lists this job from error.json
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except Exception as exc:
        _record_failure(cfg, exc)
        if _in_multirun():
            import traceback

            traceback.print_exc()
            return None
        raise
    except BaseException as exc:
        _record_failure(cfg, exc)
        raise
    # The headline metric, so Hydra sweepers that optimise a return value can use it.
    return next((v for k, v in results.items() if k.startswith("val_")), None)


def _in_multirun() -> bool:
    """Whether this job is one of a -m sweep (a failure must not stop the other jobs)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
