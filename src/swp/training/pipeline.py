"""The paper's schedule: train while tracking -> prune -> fine-tune with masks -> evaluate.

Everything here takes plain objects (model, task, pruner, schedule, logger); the entrypoint
builds them from the config. Tasks and pruners are swapped without touching this file.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from swp.energy.meter import NullMeter
from swp.logging.base import Logger
from swp.pruners.base import Pruner
from swp.pruning.masks import MaskSet
from swp.pruning.threshold import sparsity
from swp.training.artifacts import unique_parameters
from swp.training.loop import evaluate, make_optimizer, train_phase
from swp.training.schedule import Schedule


def train_prune_finetune(
    *,
    model: nn.Module,
    task,
    pruner: Pruner,
    schedule: Schedule,
    logger: Logger,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    prune_rate: float,
    target_sparsity: float | None,
    seed: int,
    progress: bool = False,
    on_track: Callable[[int], None] | None = None,
    meter: NullMeter | None = None,
) -> tuple[dict, MaskSet | None]:
    """Runs every phase and returns (results, masks). results holds the figures of results.json
    that the pipeline knows; the entrypoint adds config-level fields. `on_track(step)` is called
    after the pruner at every tracking point (e.g. to record weight trajectories); `meter`
    (energy) is told where each phase begins, and its figures are collected by the entrypoint."""
    meter = meter or NullMeter()
    start = time.perf_counter()
    fused = device.type == "cuda"
    betas = (schedule.beta1, schedule.beta2)
    common = dict(device=device, autocast=autocast, logger=logger, grad_clip=schedule.grad_clip,
                  eval_every=schedule.eval_every, log_every=schedule.log_every, progress=progress)

    # A pretrained model's own score, before fine-tuning changes it (the published baseline).
    initial = task.evaluate(model, device, autocast) if schedule.eval_initial else {}
    if initial:
        _log_eval(logger, "initial", initial, 0)

    # Phase 1: dense training; the pruner observes the weights at every tracking point.
    optimizer = make_optimizer(model, schedule.lr, schedule.weight_decay, betas, fused)

    def track(step: int) -> None:
        if schedule.is_tracking_point(step):
            pruner.observe()
            if on_track is not None:
                on_track(step + 1)

    meter.begin("train")
    dense_stats = train_phase(
        model, task, optimizer, phase="train", steps=schedule.train_steps, lr_at=schedule.train_lr,
        generator=torch.Generator().manual_seed(seed), after_step=track, **common,
    )
    meter.begin("evaluate")
    dense = evaluate(task, model, device, autocast, "evaluate dense", progress)
    _log_eval(logger, "dense", dense, schedule.train_steps)

    # Phase 2: prune once, by Eq. 2 at prune_rate (or the rate that gives target_sparsity).
    meter.begin("prune")
    masks, thresholds, rate = None, {}, prune_rate
    if pruner.prunes:
        if target_sparsity is not None:
            rate = pruner.rate_for_sparsity(target_sparsity)
        keep, thresholds = pruner.masks(rate)
        masks = MaskSet(pruner.params, keep)
        masks.apply(optimizer)
        masks.check("after pruning")
    del optimizer
    meter.begin("evaluate")
    pruned = evaluate(task, model, device, autocast, "evaluate pruned", progress)
    _log_eval(logger, "pruned", pruned, schedule.train_steps)
    logger.log(_sparsity_metrics(model, pruner, thresholds), step=schedule.train_steps)

    # Phase 3: fine-tune with the masks enforced after every optimizer step.
    ft_stats = {"tokens_per_s": 0.0}
    if schedule.finetune_steps > 0:
        meter.begin("finetune")
        optimizer = make_optimizer(model, schedule.finetune_lr, schedule.weight_decay, betas, fused)
        ft_stats = train_phase(
            model, task, optimizer, phase="finetune", steps=schedule.finetune_steps,
            lr_at=schedule.finetune_lr_at, generator=torch.Generator().manual_seed(seed + 1),
            masks=masks, step_offset=schedule.train_steps, **common,
        )
        del optimizer
        if masks is not None:
            masks.check("after fine-tuning")

    # Phase 4: evaluate.
    meter.begin("evaluate")
    final = evaluate(task, model, device, autocast, "evaluate final", progress)
    meter.end()
    end_step = schedule.train_steps + schedule.finetune_steps
    _log_eval(logger, "final", final, end_step)

    results = {"prune_rate_used": rate}
    for prefix, metrics in (("initial_val_", initial), ("dense_val_", dense), ("pruned_val_", pruned), ("val_", final)):
        results |= {prefix + k: v for k, v in metrics.items()}
    results |= _sparsity_report(model, pruner, masks, thresholds)
    results |= {
        "train_tokens_per_s": dense_stats["tokens_per_s"],
        "finetune_tokens_per_s": ft_stats["tokens_per_s"],
        "tracking_points": getattr(pruner, "t", 0),
        # SWP's price in memory, against the model's own bytes (the 7B concern).
        "tracked_state_bytes": getattr(pruner, "state_bytes", lambda: 0)(),
        "model_bytes": sum(p.numel() * p.element_size() for p in unique_parameters(model)),
        "wall_s": time.perf_counter() - start,
    }
    return results, masks


def _log_eval(logger: Logger, stage: str, metrics: dict, step: int) -> None:
    logger.log({f"val/{k}": v for k, v in metrics.items()} | {f"{stage}/val_{k}": v for k, v in metrics.items()}, step=step)


def _sparsity_report(model: nn.Module, pruner: Pruner, masks: MaskSet | None, thresholds: dict) -> dict:
    """Sparsity measured on the weights themselves (zeros / elements), not taken from masks."""
    pruned = list(pruner.params.values())
    return {
        "sparsity": sparsity(pruned),
        "sparsity_overall": sparsity(unique_parameters(model)),
        "mask_sparsity": masks.sparsity() if masks is not None else 0.0,
        "prunable_params": sum(p.numel() for p in pruned),
        "total_params": sum(p.numel() for p in unique_parameters(model)),
        "layers": [
            {"name": n, "numel": p.numel(), "sparsity": sparsity([p]), "threshold": thresholds.get(n)}
            for n, p in pruner.params.items()
        ],
    }


def _sparsity_metrics(model: nn.Module, pruner: Pruner, thresholds: dict) -> dict:
    report = _sparsity_report(model, pruner, None, thresholds)
    out = {"prune/sparsity": report["sparsity"], "prune/sparsity_overall": report["sparsity_overall"]}
    for layer in report["layers"]:
        out[f"prune/layer/{layer['name']}/sparsity"] = layer["sparsity"]
        if layer["threshold"] is not None:
            out[f"prune/layer/{layer['name']}/threshold"] = layer["threshold"]
    return out
