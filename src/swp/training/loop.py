"""One explicit training loop, used for both the dense phase and masked fine-tuning."""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from swp.errors import RunError
from swp.logging.base import Logger
from swp.pruning.masks import MaskSet


class NonFiniteLossError(RunError):
    """The training loss became NaN or infinite."""


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], fused: bool = False):
    """AdamW with decay on matrices only (norm gains, biases and 1-D tensors are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))


def evaluate(task, model: nn.Module, device: torch.device, autocast, desc: str, progress: bool) -> dict[str, float]:
    """`task.evaluate` under a one-tick bar that names the evaluation and ends with its metrics."""
    with tqdm(total=1, desc=desc, disable=not progress, dynamic_ncols=True, leave=False) as bar:
        metrics = task.evaluate(model, device, autocast)
        bar.set_postfix({k: f"{v:.4f}" for k, v in metrics.items()})
        bar.update(1)
    return metrics


def train_phase(
    model: nn.Module,
    task,
    optimizer: torch.optim.Optimizer,
    *,
    phase: str,
    steps: int,
    lr_at: Callable[[int], float],
    generator: torch.Generator,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    logger: Logger,
    step_offset: int = 0,
    start_step: int = 0,
    grad_clip: float = 0.0,
    masks: MaskSet | None = None,
    after_step: Callable[[int], None] | None = None,
    eval_every: int = 0,
    log_every: int = 10,
    progress: bool = False,
) -> dict[str, float]:
    """Runs `steps` optimizer steps; returns the phase's throughput and last training loss.

    The order inside a step is the whole method's contract: forward, backward, zero the
    gradients of pruned weights, clip, step, re-zero pruned weights, then `after_step` (where
    SWP records its tracking points), so the tracker only ever sees masked weights.
    A resumed phase starts at `start_step` (steps already done), with the optimizer and
    `generator` restored, so it draws the same batches and learning rates as an uninterrupted one.
    """
    model.train()
    bar = tqdm(total=steps, initial=start_step, desc=phase, disable=not progress, dynamic_ncols=True, leave=False)
    tokens = 0
    compute_s = 0.0
    last_loss = math.nan
    for step in range(start_step, steps):
        t0 = time.perf_counter()
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = task.train_batch(generator, device)
        with autocast():
            loss = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            masks.mask_grads()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if masks is not None:
            masks.enforce()
        if after_step is not None:
            after_step(step)
        tokens += task.tokens_per_batch
        if (step + 1) % log_every == 0 or step + 1 == steps:
            last_loss = float(loss.detach())  # the one host sync per log interval
            if not math.isfinite(last_loss):
                raise NonFiniteLossError(f"{phase}: loss is {last_loss} at step {step_offset + step}")
            compute_s += time.perf_counter() - t0
            logger.log(
                {f"{phase}/loss": last_loss, "lr": lr, "tokens_per_s": tokens / compute_s, "phase": phase},
                step=step_offset + step,
            )
            bar.set_postfix(loss=f"{last_loss:.4f}")
        else:
            compute_s += time.perf_counter() - t0
        bar.update(1)
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            metrics = evaluate(task, model, device, autocast, f"evaluate ({phase})", progress)
            logger.log({f"val/{k}": v for k, v in metrics.items()} | {"phase": phase}, step=step_offset + step)
            model.train()
    bar.close()
    return {"tokens_per_s": tokens / compute_s if compute_s else 0.0, "last_loss": last_loss, "seconds": compute_s}
