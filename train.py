"""The one entrypoint: `python train.py pruner=swp prune_rate=0.6` (see README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from swp.errors import ConfigError  # noqa: E402


def run(cfg: DictConfig) -> dict:
    """Builds every part from the config, runs the schedule, writes the run folder.

    Returns the results dict (also written to results.json) so tests and sweepers can use it.
    """
    from swp import runtime
    from swp.analysis.trajectories import TrajectoryRecorder
    from swp.analysis.trajectory_report import publish_trajectories
    from swp.logging.base import JsonlLogger, LoggerGroup
    from swp.pruning.nm import check_nm_target, nm_label
    from swp.training.artifacts import save_model_weights, save_tensors, write_json_atomic
    from swp.training.pipeline import train_prune_finetune

    # Everything that can be wrong with the input is checked before training starts.
    prune_rate, target = runtime.check_prune_settings(cfg.prune_rate, cfg.get("target_sparsity"))
    device = runtime.resolve_device(cfg.device)
    autocast = runtime.autocast_factory(cfg.precision, device)
    out_dir = Path(cfg.output_dir or hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    runtime.set_threads(cfg.get("threads"))
    runtime.seed_everything(cfg.seed)
    task = build(cfg.dataset)
    model = build(cfg.model, **task.model_kwargs()).to(device)
    pruner = build(cfg.pruner)(model=model)
    check_nm_target(getattr(pruner, "nm", None), target)
    schedule = build(cfg.schedule)
    export = build(cfg.export)
    # A fixed sample of weights recorded at every tracking point (paper Figs. 1-2), any pruner.
    per_tensor = cfg.trajectories.per_tensor
    recorder = TrajectoryRecorder(pruner.params, per_tensor, cfg.seed) if per_tensor else None

    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # The options chosen per group, top level, so dashboards can group and filter runs by them.
    resolved |= {f"{g}_choice": _choice(cfg, g) for g in ("model", "dataset", "pruner", "schedule", "experiment")}
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    meter = build(cfg.energy)(out_dir=str(out_dir)) if cfg.get("energy") else None
    logger = LoggerGroup(JsonlLogger(out_dir / "metrics.jsonl"), build(cfg.logger)(config=resolved, out_dir=str(out_dir)))
    ok = False
    try:
        results, masks = train_prune_finetune(
            model=model, task=task, pruner=pruner, schedule=schedule, logger=logger, device=device,
            autocast=autocast, prune_rate=prune_rate, target_sparsity=target, seed=cfg.seed,
            progress=_progress_enabled(cfg.progress), meter=meter,
            on_track=recorder.record if recorder else None,
        )
        results = {
            "pruner": _choice(cfg, "pruner"), "model": _choice(cfg, "model"), "dataset": _choice(cfg, "dataset"),
            "schedule": _choice(cfg, "schedule"), "prune_rate": prune_rate, "target_sparsity": target,
            "seed": cfg.seed, "device": str(device), "precision": cfg.precision,
            "nm": nm_label(getattr(pruner, "nm", None)),
        } | results | (meter.results() if meter else {})
        results |= getattr(task, "extra_results", dict)()  # task-specific figures (price: mean baseline)
        save_model_weights(out_dir / "model.safetensors", model)
        results |= export(model=model, task=task, pruned=pruner.params, out_dir=out_dir, device=device, autocast=autocast)
        if masks is not None:
            save_tensors(out_dir / "masks.safetensors", masks.keep)
        scores = pruner.artifacts()
        if scores:
            save_tensors(out_dir / "importance.safetensors", scores)
        if recorder is not None:
            publish_trajectories(
                recorder.result(masks.keep if masks is not None else None), out_dir, logger,
                show=cfg.trajectories.show, seed=cfg.seed,
                title=f"{results['pruner'] or 'run'}, sparsity {results['sparsity']:.1%}",
            )
        write_json_atomic(out_dir / "results.json", results)  # last: its presence means success
        logger.summary({k: v for k, v in results.items() if not isinstance(v, (list, dict))})
        ok = True
    finally:
        if meter:
            meter.close()
        logger.finish(ok)
    _print_summary(results, out_dir)
    return results


def build(node, **kwargs):
    """hydra.utils.instantiate, with our ConfigError surfaced from Hydra's wrapping (nested
    targets wrap it in InstantiationException) so the user gets the one-line message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def _choice(cfg: DictConfig, group: str) -> str | None:
    """The option chosen for a config group (recorded by Hydra; None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def _progress_enabled(setting) -> bool:
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


def _print_summary(r: dict, out_dir: Path) -> None:
    metric = next(k[len("val_"):] for k in r if k.startswith("val_") and k != "val_fraction")
    print(
        f"pruner={r['pruner']} prune_rate={r['prune_rate_used']:.4g} sparsity={r['sparsity']:.1%} "
        f"(overall {r['sparsity_overall']:.1%}) | val_{metric}: dense {r[f'dense_val_{metric}']:.4f} "
        f"-> pruned {r[f'pruned_val_{metric}']:.4f} -> final {r[f'val_{metric}']:.4f}"
        + (f" (baseline {r[f'baseline_val_{metric}']:.4f})" if f"baseline_val_{metric}" in r else "") + " | "
        f"{r['train_tokens_per_s']:.0f} tok/s, {r['wall_s']:.0f}s\nrun folder: {out_dir}"
    )


def _record_failure(cfg: DictConfig, exc: BaseException) -> None:
    """Leaves error.json (never results.json) in the run folder, so a sweep summary can list
    the failed job and why; a failure to write it must not hide the original error."""
    import json

    from hydra.core.hydra_config import HydraConfig

    try:
        out_dir = Path(cfg.get("output_dir") or HydraConfig.get().runtime.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "error.json").write_text(json.dumps({"type": type(exc).__name__, "error": str(exc)}))
    except Exception:
        pass


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        results = run(cfg)
    except ConfigError as exc:
        _record_failure(cfg, exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except BaseException as exc:
        _record_failure(cfg, exc)
        raise
    # The headline metric, so Hydra sweepers that optimise a return value can use it.
    return next((v for k, v in results.items() if k.startswith("val_")), None)


if __name__ == "__main__":
    main()
