"""The one schema of results.json: every key is produced here and read back through here.

A run's results are flat scalars plus the per-layer list ``layers``:

- identity: ``pruner``, ``model``, ``dataset``, ``schedule``, ``recovery``, ``recipe`` (the chosen
  options; recipe null outside the bake-off), ``prune_rate``,
  ``target_sparsity``, ``seed``, ``device``, ``precision``, ``nm``, ``allocation`` (``shared_rate``:
  one prune_rate, per-tensor thresholds; ``uniform``: every tensor, or row, at the target);
- the headline: ``headline_metric`` (the task's first metric: ``loss`` for characters, ``ppl``
  for token LMs, ``mae`` for price) and ``lower_is_better``;
- metrics per stage: ``initial_val_<m>`` (pretrained models, if evaluated), ``dense_val_<m>``,
  ``pruned_val_<m>``, ``val_<m>`` (final), for every metric the task reports;
- sparsity measured on the weights: ``sparsity`` (prunable tensors), ``sparsity_overall`` (all
  parameters), ``mask_sparsity``, ``prunable_params``, ``total_params``, ``layers``;
- cost: ``train_tokens_per_s``, ``finetune_tokens_per_s``, ``tracking_points``,
  ``tracked_state_bytes``, ``model_bytes``, ``wall_s``; run facts: ``prune_rate_used`` (null
  where the masks are ranked at ``target_sparsity``: N:M, ``allocation: uniform|owl``),
  ``dense_cache``, ``resumed_from``; calibration (Wanda, SparseGPT, activation-aware SWP):
  ``calibration_batches``, ``calibration_seed``, ``calibration_tokens`` (0 without calibration);
  under ``allocation: owl`` also ``owl_m``, ``owl_lambda`` and ``owl_layers`` (per block: ``layer``,
  ``numel``, ``outlier_ratio``, ``sparsity`` as allocated; ``layers`` has each tensor's measured one);
- zero-shot (``zeroshot=local|paper7``): ``zeroshot/<task>/<metric>`` (acc, acc_norm, their
  ``_stderr``, ``samples``) and ``zeroshot/mean/<metric>`` after the final evaluation,
  ``pruned_zeroshot/...`` right after pruning if asked, and the setting (``zeroshot_tasks``,
  ``zeroshot_num_fewshot``, ``zeroshot_limit``, ``lm_eval_version``);
- ``stage_seconds``: seconds per stage, exclusive (``dense_training``, ``dense_cache``,
  ``calibration``, ``pruning``, ``recovery``, ``eval_<stage>``, ``zeroshot_<stage>``,
  ``checkpoints``, ``energy_meter``, ``export``; only the stages that ran); ``wall_s`` covers
  them all, from the first stage to the end of the export; ``stage_cpu_seconds``: the process's
  CPU seconds (all threads) in each;
- training tokens by phase (`swp.run.Run.token_accounting`): ``tokens_dense`` (before any weight is
  pruned), ``tokens_pruning`` (a gradual pruner's ramp), ``tokens_recovery`` (with the final masks),
  ``tokens_total`` (their sum; calibration tokens are not in it); ``curve``: every validation
  evaluation as ``{"tokens", "stage", "val_<m>"...}``, the quality-against-tokens axis
  (``schedule.eval_every_tokens`` adds points at fixed token counts);
- then the recovery's settings and costs (``recovery_<setting>``, ``recovery_teacher_bytes`` for
  distillation; ``lora_*`` for LoRA: adapter size, sparsity before and after the merge), the
  energy meter's keys, the task's own facts (`Task.extra_results`) and the export's.

The summary line, the W&B summary, the sweep CSV and figures, Hydra's return value and
`scripts/sweep_table.py` all read the headline through `headline` / `headline_value`.
"""

from __future__ import annotations

from pathlib import Path

STAGE_PREFIXES = (("initial", "initial_val_"), ("dense", "dense_val_"), ("pruned", "pruned_val_"), ("final", "val_"))
IDENTITY = ("pruner", "model", "dataset", "schedule", "recovery", "recipe", "prune_rate", "target_sparsity", "seed",
            "device",
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
    out |= figures.get("allocation_facts") or {}
    out["stage_seconds"] = dict(figures.get("stage_seconds", {}))
    out["stage_cpu_seconds"] = dict(figures.get("stage_cpu_seconds", {}))
    for prefix in ("zeroshot", "pruned_zeroshot"):
        out |= {f"{prefix}/{k}": v for k, v in (figures.get(prefix) or {}).items()}
    for extra in extras:
        out |= extra
    return out


# Keys that hold a number (or null) in every results.json, and the stage metrics' prefixes.
NUMBERS = ("prune_rate", "target_sparsity", "seed", "prune_rate_used", "sparsity", "sparsity_overall", "mask_sparsity",
           "prunable_params", "total_params", "train_tokens_per_s", "finetune_tokens_per_s", "tracking_points",
           "tracked_state_bytes", "model_bytes", "wall_s", "calibration_batches", "calibration_seed",
           "calibration_tokens")
METRIC_PREFIXES = tuple(prefix for _, prefix in STAGE_PREFIXES)


def damage(results) -> str | None:
    """What is wrong with a results dict read back from disk (None when it is sound): not a
    mapping, or a value that is not a number where results.json holds one (the sweep tables
    format and average them)."""
    if not isinstance(results, dict):
        return f"not a mapping of results but {type(results).__name__}"
    for key, value in results.items():
        numeric = key in NUMBERS or (key.startswith(METRIC_PREFIXES) and key != "val_fraction")
        if numeric and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} is {value!r}, not a number"
    if headline(results) is None or headline_value(results) is None:
        return "no final metric (val_<metric>)"
    return None


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
    """The flat part, for the W&B summary and a sweep CSV row: lists are left out, a dict of
    scalars (``stage_seconds``) becomes one key per entry (``stage_seconds/pruning``)."""
    out = {}
    for key, value in results.items():
        if isinstance(value, dict):
            out |= {f"{key}/{k}": v for k, v in value.items() if not isinstance(v, (list, dict))}
        elif not isinstance(value, list):
            out[key] = value
    return out


def summary_line(r: dict, out_dir: Path) -> str:
    """The lines a finished run prints: headline metric at each stage, sparsity, speed; the
    zero-shot mean accuracy if scored; the seconds of each stage; the run folder."""
    metric = headline(r)
    baseline = f" (baseline {r[f'baseline_val_{metric}']:.4f})" if f"baseline_val_{metric}" in r else ""
    return (
        f"pruner={r['pruner']} {_rate_part(r)} sparsity={r['sparsity']:.1%} "
        f"(overall {r['sparsity_overall']:.1%}) | val_{metric}: dense {headline_value(r, 'dense'):.4f} "
        f"-> pruned {headline_value(r, 'pruned'):.4f} -> final {headline_value(r):.4f}{baseline} | "
        f"{r['train_tokens_per_s']:.0f} tok/s, {r['wall_s']:.0f}s{_zeroshot_part(r)}\n"
        f"{stage_line(r.get('stage_seconds') or {})}run folder: {out_dir}"
    )


def _rate_part(r: dict) -> str:
    """The rate that made the masks, or the target they were ranked to (no rate decided them)."""
    if r["prune_rate_used"] is not None:
        return f"prune_rate={r['prune_rate_used']:.4g}"
    return f"target_sparsity={r['target_sparsity']:.4g}" if r.get("target_sparsity") is not None else "prune_rate=-"


def _zeroshot_part(r: dict) -> str:
    if "zeroshot/mean/acc" not in r:
        return ""
    pruned = f"pruned {r['pruned_zeroshot/mean/acc']:.4f} -> " if "pruned_zeroshot/mean/acc" in r else ""
    return f" | zero-shot mean acc: {pruned}final {r['zeroshot/mean/acc']:.4f}"


def stage_line(seconds: dict) -> str:
    """``seconds: dense_training 120.3, pruning 2.1, ...`` (with its newline), or nothing."""
    if not seconds:
        return ""
    return "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + "\n"
