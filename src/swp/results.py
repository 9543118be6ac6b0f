"""The one schema of results.json: every key is produced here and read back through here.

A run's results are flat scalars plus the per-layer list ``layers``:

- identity: ``pruner``, ``model``, ``dataset``, ``schedule``, ``recipe`` (the chosen options; recipe
  null outside the bake-off), ``prune_rate``,
  ``target_sparsity``, ``seed``, ``device``, ``precision``, ``nm``, ``allocation`` (``shared_rate``:
  one prune_rate, per-tensor thresholds; ``uniform``: every tensor, or row, at the target);
- the headline: ``headline_metric`` (the task's first metric: ``loss`` for characters, ``ppl``
  for token LMs, ``mae`` for price) and ``lower_is_better``;
- metrics per stage: ``initial_val_<m>`` (pretrained models, if evaluated), ``dense_val_<m>``,
  ``pruned_val_<m>``, ``val_<m>`` (final), for every metric the task reports;
- sparsity measured on the weights: ``sparsity`` (prunable tensors), ``sparsity_overall`` (all
  parameters), ``mask_sparsity``, ``prunable_params``, ``total_params``, ``layers``;
- cost: ``train_tokens_per_s``, ``finetune_tokens_per_s``, ``tracking_points``,
  ``tracked_state_bytes``, ``model_bytes``, ``wall_s``; run facts: ``prune_rate_used``,
  ``dense_cache``, ``resumed_from``; calibration (Wanda, SparseGPT, activation-aware SWP):
  ``calibration_batches``, ``calibration_seed``, ``calibration_tokens`` (0 without calibration);
- training tokens by phase (`swp.run.Run.token_accounting`): ``tokens_dense`` (before any weight is
  pruned), ``tokens_pruning`` (a gradual pruner's ramp), ``tokens_recovery`` (with the final masks),
  ``tokens_total`` (their sum; calibration tokens are not in it); ``curve``: every validation
  evaluation as ``{"tokens", "stage", "val_<m>"...}``, the quality-against-tokens axis
  (``schedule.eval_every_tokens`` adds points at fixed token counts);
- then the energy meter's keys, the task's own facts (`Task.extra_results`) and the export's.

The summary line, the W&B summary, the sweep CSV and figures, Hydra's return value and
`scripts/sweep_table.py` all read the headline through `headline` / `headline_value`.
"""

from __future__ import annotations

from pathlib import Path

STAGE_PREFIXES = (("initial", "initial_val_"), ("dense", "dense_val_"), ("pruned", "pruned_val_"), ("final", "val_"))
IDENTITY = ("pruner", "model", "dataset", "schedule", "recipe", "prune_rate", "target_sparsity", "seed", "device",
            "precision", "nm", "allocation")


def assemble(identity: dict, figures: dict, *, headline_metric: str, lower_is_better: bool,
             extras: tuple[dict, ...] = ()) -> dict:
    """results.json from the run's identity, what `Run.figures` measured and the extras (energy
    meter, task facts, export), in that order.

    Raises:
        KeyError: an identity key is missing (every result names what produced it).
    """
    out = {key: identity[key] for key in IDENTITY}
    out |= {"headline_metric": headline_metric, "lower_is_better": lower_is_better}
    out["prune_rate_used"] = figures["prune_rate_used"]
    for stage, prefix in STAGE_PREFIXES:
        out |= {prefix + k: v for k, v in (figures[stage] or {}).items()}
    out |= figures["sparsity"]
    for key in ("train_tokens_per_s", "finetune_tokens_per_s", "tracking_points", "tracked_state_bytes",
                "model_bytes", "dense_cache", "resumed_from", "wall_s", "calibration_batches", "calibration_seed",
                "calibration_tokens", "tokens_dense", "tokens_pruning", "tokens_recovery", "tokens_total", "curve"):
        out[key] = figures[key]
    for extra in extras:
        out |= extra
    return out


def headline(results: dict) -> str | None:
    """The headline metric of a results dict (or sweep CSV row); older results without the key
    fall back to the first final ``val_<m>`` they hold."""
    if results.get("headline_metric"):
        return str(results["headline_metric"])
    return next((k[len("val_"):] for k in results if k.startswith("val_") and k != "val_fraction"), None)


def headline_value(results: dict, stage: str = "final") -> float | None:
    """The headline metric at a stage (``initial``, ``dense``, ``pruned``, ``final``)."""
    metric = headline(results)
    if metric is None:
        return None
    return results.get(dict(STAGE_PREFIXES)[stage] + metric)


def scalars(results: dict) -> dict:
    """The flat part (no lists or dicts): the W&B summary and a sweep CSV row."""
    return {k: v for k, v in results.items() if not isinstance(v, (list, dict))}


def summary_line(r: dict, out_dir: Path) -> str:
    """The two lines a finished run prints: headline metric at each stage, sparsity, speed."""
    metric = headline(r)
    baseline = f" (baseline {r[f'baseline_val_{metric}']:.4f})" if f"baseline_val_{metric}" in r else ""
    return (
        f"pruner={r['pruner']} prune_rate={r['prune_rate_used']:.4g} sparsity={r['sparsity']:.1%} "
        f"(overall {r['sparsity_overall']:.1%}) | val_{metric}: dense {headline_value(r, 'dense'):.4f} "
        f"-> pruned {headline_value(r, 'pruned'):.4f} -> final {headline_value(r):.4f}{baseline} | "
        f"{r['train_tokens_per_s']:.0f} tok/s, {r['wall_s']:.0f}s\nrun folder: {out_dir}"
    )
