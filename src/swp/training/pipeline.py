"""The paper's schedule: train while tracking -> prune -> fine-tune with masks -> evaluate.

Everything here takes plain objects (model, task, pruner, schedule, logger); the entrypoint
builds them from the config. Tasks and pruners are swapped without touching this file.

A run can stop anywhere and continue exactly: a checkpoint is written every
`checkpoints.every` steps and at each phase boundary (after dense training, right after
pruning, after fine-tuning), and a run given `resume=` skips what its checkpoint already holds.
The dense phase can also come from a shared cache (`dense_cache`), since it is identical for
every point of a compression sweep.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from swp.energy.meter import NullMeter
from swp.errors import CheckpointError
from swp.infra.checkpoint import STAGES, Checkpoint, CheckpointStore
from swp.infra.dense_cache import DenseCache
from swp.infra.io import unique_parameters
from swp.infra.rng import capture_rng, restore_rng
from swp.infra.signals import StopRequest
from swp.logging.base import Logger
from swp.methods.base import Pruner
from swp.pruning.masks import MaskSet
from swp.pruning.threshold import sparsity
from swp.training.guard import check_sparsity
from swp.training.loop import NonFiniteLossError, evaluate, make_optimizer, train_phase
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
    checkpoints: CheckpointStore | None = None,
    resume: Checkpoint | None = None,
    dense_cache: DenseCache | None = None,
    stop: StopRequest | None = None,
    recorder=None,
    meter: NullMeter | None = None,
) -> tuple[dict, MaskSet | None]:
    """Runs every phase and returns (results, masks). results holds the figures of results.json
    that the pipeline knows; the entrypoint adds config-level fields.

    Args:
        checkpoints: where and how often to checkpoint (None: never).
        resume: a verified checkpoint of this same run to continue from (None: start fresh).
        dense_cache: the shared dense-phase cache (None: always train the dense phase).
        stop: set by SIGTERM/SIGINT; the run stops at the next step end with a checkpoint.
        recorder: records extra state at every tracking point (weight trajectories, Figs. 1-2):
            `record(step)`, `state_dict()`, `load_state_dict()`; carried by checkpoints and the
            dense cache like the pruner's state.
        meter: energy meter told where each phase begins (`begin(phase)`, `end()`).
    """
    start = time.perf_counter()
    meter = meter or NullMeter()
    T, F = schedule.train_steps, schedule.finetune_steps
    fused = device.type == "cuda"
    betas = (schedule.beta1, schedule.beta2)
    common = dict(device=device, autocast=autocast, logger=logger, grad_clip=schedule.grad_clip,
                  eval_every=schedule.eval_every, log_every=schedule.log_every, progress=progress)
    # What has been measured so far; saved in every checkpoint so a resumed run reports it too.
    rec = {"rate": prune_rate, "thresholds": {}, "mask_sparsity": 0.0, "dense_cache": "off",
           "dense_stats": {"tokens_per_s": 0.0}, "ft_stats": {"tokens_per_s": 0.0}}
    masks: MaskSet | None = None
    reached = -1  # index in STAGES of the resumed checkpoint (-1: a fresh run)
    if resume is not None:
        rec = dict(resume.state["record"])
        masks = _restore(resume, model, pruner, recorder)
        reached = STAGES.index(resume.stage)

    def pending(stage: str) -> bool:
        return reached < STAGES.index(stage)

    def snapshot(stage: str, step: int, optimizer_state=None, generator_state=None) -> dict:
        return {"stage": stage, "step": step, "optimizer": optimizer_state, "generator": generator_state,
                "pruner": {"class": _class_name(pruner), "state": pruner.state_dict()},
                "recorder": recorder.state_dict() if recorder is not None else None,
                "masks": dict(masks.keep) if masks is not None else None, "mask_sparsity": rec["mask_sparsity"],
                "rng": capture_rng(), "record": rec}

    def checkpoint(where: str, global_step: int, *state_args) -> None:
        """Writes a checkpoint (if they are on), then honours a pending stop request."""
        path = None
        if checkpoints is not None:
            _require_finite(model, where)
            path = checkpoints.save(model, snapshot(*state_args), global_step)
        if stop is not None and stop.requested:
            stop.stop(where, path)

    def end_of_step(phase: str, total: int, offset: int, optimizer, generator) -> Callable[[int], None]:
        def after_step(step: int) -> None:
            if phase == "train":
                pruner.on_train_step(step, optimizer)
            if phase == "train" and schedule.is_tracking_point(step):
                pruner.observe()
                if recorder is not None:
                    recorder.record(step + 1)
            done = step + 1  # the phase's last step is covered by the boundary checkpoint
            if done < total and ((checkpoints is not None and checkpoints.due(done)) or (stop is not None and stop.requested)):
                checkpoint(f"at {phase} step {offset + done}", offset + done,
                           phase, done, optimizer.state_dict(), generator.get_state())
        return after_step

    # Phase 1: dense training; the pruner observes the weights at every tracking point. A fresh
    # run may instead take the identical dense phase from the shared cache.
    if pending("dense"):
        use_cache = dense_cache is not None and resume is None
        with dense_cache.reserve() if use_cache else contextlib.nullcontext() as entry:
            if entry is not None and entry.hit is not None:
                dense_state = _restore_dense(entry.hit, model, pruner, recorder)
                cached = dense_state["record"]
                rec |= {k: cached[k] for k in ("dense", "dense_stats", "initial") if k in cached} | {"dense_cache": "hit"}
                entry.replay_metrics(logger)
            else:
                # A pretrained model's own score, before fine-tuning changes it (published baselines).
                if schedule.eval_initial and resume is None:
                    rec["initial"] = evaluate(task, model, device, autocast, "evaluate initial", progress)
                    _log_eval(logger, "initial", rec["initial"], 0)
                optimizer = make_optimizer(model, schedule.lr, schedule.weight_decay, betas, fused)
                generator = torch.Generator().manual_seed(seed)
                meter.begin("train")
                if resume is not None:  # resumed inside this phase
                    optimizer.load_state_dict(resume.state["optimizer"])
                    generator.set_state(resume.state["generator"])
                rec["dense_stats"] = train_phase(
                    model, task, optimizer, phase="train", steps=T, lr_at=schedule.train_lr, generator=generator,
                    start_step=resume.step if resume is not None else 0,
                    after_step=end_of_step("train", T, 0, optimizer, generator), **common,
                )
                meter.begin("evaluate")
                rec["dense"] = evaluate(task, model, device, autocast, "evaluate dense", progress)
                _log_eval(logger, "dense", rec["dense"], T)
                dense_state = snapshot("dense", 0, optimizer.state_dict(), generator.get_state())
                if entry is not None:
                    rec["dense_cache"] = "miss"
                    entry.publish(model, dense_state | {"record": rec})
                del optimizer
        if rec["dense_cache"] != "hit" or (stop is not None and stop.requested):  # a hit's entry is its checkpoint
            checkpoint("after dense training", T, "dense", 0, dense_state["optimizer"], dense_state["generator"])
        del dense_state

    # Phase 2: prune once, by Eq. 2 at prune_rate (or the rate that gives target_sparsity).
    if pending("pruned"):
        meter.begin("prune")
        if pruner.calibrates:
            _calibrate(pruner, model, task, device, autocast)
        if pruner.prunes:
            rec["rate"] = pruner.rate_for_sparsity(target_sparsity) if target_sparsity is not None else prune_rate
            keep, rec["thresholds"] = pruner.masks(rec["rate"])
            masks = MaskSet(pruner.params, keep)
            masks.apply()  # the dense optimizer is gone; fine-tuning starts a fresh one
            rec["mask_sparsity"] = masks.sparsity()
        check_sparsity(masks, "after pruning", rec["mask_sparsity"])
        meter.begin("evaluate")
        rec["pruned"] = evaluate(task, model, device, autocast, "evaluate pruned", progress)
        _log_eval(logger, "pruned", rec["pruned"], T)
        logger.log(_sparsity_metrics(model, pruner, rec["thresholds"]), step=T)
        checkpoint("right after pruning", T, "pruned", 0)

    # Phase 3: fine-tune with the masks enforced after every optimizer step.
    if pending("finetuned") and F > 0:
        meter.begin("finetune")
        optimizer = make_optimizer(model, schedule.finetune_lr, schedule.weight_decay, betas, fused)
        generator = torch.Generator().manual_seed(seed + 1)
        resumed_inside = resume is not None and resume.stage == "finetune"
        if resumed_inside:
            optimizer.load_state_dict(resume.state["optimizer"])
            generator.set_state(resume.state["generator"])
        rec["ft_stats"] = train_phase(
            model, task, optimizer, phase="finetune", steps=F, lr_at=schedule.finetune_lr_at, generator=generator,
            masks=masks, step_offset=T, start_step=resume.step if resumed_inside else 0,
            after_step=end_of_step("finetune", F, T, optimizer, generator), **common,
        )
        del optimizer
        check_sparsity(masks, "after fine-tuning", rec["mask_sparsity"])
        checkpoint("after fine-tuning", T + F, "finetuned", 0)

    # Phase 4: evaluate.
    meter.begin("evaluate")
    final = evaluate(task, model, device, autocast, "evaluate final", progress)
    meter.end()
    _log_eval(logger, "final", final, T + F)
    check_sparsity(masks, "at the end", rec["mask_sparsity"])

    results = {"prune_rate_used": rec["rate"]}
    for prefix, metrics in (("initial_val_", rec.get("initial", {})), ("dense_val_", rec["dense"]),
                            ("pruned_val_", rec["pruned"]), ("val_", final)):
        results |= {prefix + k: v for k, v in metrics.items()}
    results |= _sparsity_report(model, pruner, masks, rec["thresholds"])
    results |= {
        "train_tokens_per_s": rec["dense_stats"]["tokens_per_s"],
        "finetune_tokens_per_s": rec["ft_stats"]["tokens_per_s"],
        "tracking_points": pruner.tracking_points,
        # SWP's price in memory, against the model's own bytes (the 7B concern).
        "tracked_state_bytes": pruner.state_bytes(),
        "model_bytes": sum(p.numel() * p.element_size() for p in unique_parameters(model)),
        "dense_cache": rec["dense_cache"],
        "resumed_from": resume.path.name if resume is not None else None,
        "wall_s": time.perf_counter() - start,
    }
    return results, masks


def _calibrate(pruner: Pruner, model: nn.Module, task, device, autocast) -> None:
    """Draws the pruner's calibration batches from the training split with their own seed."""
    generator = torch.Generator().manual_seed(pruner.calibration_seed)
    batches = [task.train_batch(generator, device) for _ in range(pruner.calibration_batches)]

    def forward(m: nn.Module, batch) -> None:
        with torch.no_grad(), autocast():
            task.loss(m, batch)

    was_training = model.training
    model.eval()
    pruner.calibrate(model, batches, forward)
    model.train(was_training)


def _class_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _restore(ckpt: Checkpoint, model: nn.Module, pruner: Pruner, recorder=None) -> MaskSet | None:
    """Loads weights, the pruner's tracked state, masks and RNG; the guard runs on the masks."""
    saved = ckpt.state["pruner"]["class"]
    if saved != _class_name(pruner):
        raise CheckpointError(
            f"checkpoint {ckpt.path} was written by pruner {saved}, this run uses {_class_name(pruner)}; "
            "resume with the same pruner or use a new output_dir"
        )
    ckpt.load_weights(model)
    pruner.load_state_dict(ckpt.state["pruner"]["state"])
    _restore_recorder(recorder, ckpt)
    restore_rng(ckpt.state["rng"])
    if ckpt.state["masks"] is None:
        return None
    masks = MaskSet(pruner.params, ckpt.state["masks"])
    check_sparsity(masks, f"on loading {ckpt.path}", ckpt.state["mask_sparsity"])
    return masks


def _restore_dense(entry: Checkpoint, model: nn.Module, pruner: Pruner, recorder=None) -> dict:
    """Loads a dense-cache entry. A pruner that tracks nothing ignores the tracked state (the
    entry may come from a tracking pruner: observing never changes the weights)."""
    entry.load_weights(model)
    if pruner.tracks:
        pruner.load_state_dict(entry.state["pruner"]["state"])
    _restore_recorder(recorder, entry)
    restore_rng(entry.state["rng"])
    return entry.state


def _restore_recorder(recorder, ckpt: Checkpoint) -> None:
    """Trajectory histories come back with the weights (the cache key covers whether they exist)."""
    saved = ckpt.state.get("recorder")
    if recorder is not None and saved is not None:
        recorder.load_state_dict(saved)


def _require_finite(model: nn.Module, where: str) -> None:
    """A checkpoint never holds NaN/inf weights, so the last one written is always a good one."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise NonFiniteLossError(f"weights of {name} are not finite {where}; the checkpoint was not written")


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
