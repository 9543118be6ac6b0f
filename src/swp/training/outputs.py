"""The finished run's folder: weights, masks, scores, trajectory figures, then results.json."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from swp.analysis.trajectory_report import publish_trajectories
from swp.infra.io import save_model_weights, save_tensors, write_json_atomic
from swp.logging.base import Logger
from swp.methods.base import Pruner
from swp.pruning.masks import MaskSet


def write_outputs(
    out_dir: Path,
    results: dict,
    *,
    model: nn.Module,
    masks: MaskSet | None,
    pruner: Pruner,
    logger: Logger,
    recorder=None,
    show: int = 8,
    seed: int = 0,
) -> None:
    """Writes every artifact of a finished run; results.json goes last, so its presence means
    the run finished and everything it names is on disk.

    Args:
        out_dir: the run folder.
        results: the figures for results.json (also sent to the logger's summary).
        model, masks, pruner: the final model, its keep-masks (None when nothing was pruned)
            and the pruner (whose `artifacts()` are SWP's importance scores).
        logger: receives the trajectory charts and the summary.
        recorder: the trajectory recorder (None: no Figs. 1-2).
        show, seed: weights drawn per trajectory category, and the seed choosing them.
    """
    save_model_weights(out_dir / "model.safetensors", model)
    if masks is not None:
        save_tensors(out_dir / "masks.safetensors", masks.keep)
    scores = pruner.artifacts()
    if scores:
        save_tensors(out_dir / "importance.safetensors", scores)
    if recorder is not None:
        publish_trajectories(
            recorder.result(masks.keep if masks is not None else None), out_dir, logger, show=show, seed=seed,
            title=f"{results.get('pruner') or 'run'}, sparsity {results['sparsity']:.1%}",
        )
    write_json_atomic(out_dir / "results.json", results)
    (out_dir / "error.json").unlink(missing_ok=True)  # left by an earlier, interrupted attempt
    logger.summary({k: v for k, v in results.items() if not isinstance(v, (list, dict))})


def summary_line(r: dict, out_dir: Path) -> str:
    """The two lines a finished run prints: headline metric at each stage, sparsity, speed."""
    metric = next(k[len("val_"):] for k in r if k.startswith("val_") and k != "val_fraction")
    baseline = f" (baseline {r[f'baseline_val_{metric}']:.4f})" if f"baseline_val_{metric}" in r else ""
    return (
        f"pruner={r['pruner']} prune_rate={r['prune_rate_used']:.4g} sparsity={r['sparsity']:.1%} "
        f"(overall {r['sparsity_overall']:.1%}) | val_{metric}: dense {r[f'dense_val_{metric}']:.4f} "
        f"-> pruned {r[f'pruned_val_{metric}']:.4f} -> final {r[f'val_{metric}']:.4f}{baseline} | "
        f"{r['train_tokens_per_s']:.0f} tok/s, {r['wall_s']:.0f}s\nrun folder: {out_dir}"
    )
