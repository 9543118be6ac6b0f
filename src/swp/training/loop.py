"""One explicit training loop, used for both the dense phase and masked fine-tuning."""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from swp.distributed.env import Reduce, local_only
from swp.errors import RunError
from swp.logging.base import Logger
from swp.pruning.masks import MaskSet

# One training step's loss and its named terms (the `recovery` option's; swp.recovery.base).
Objective = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


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


@dataclass(frozen=True)
class Placement:
    """Where a phase runs and reports: device, autocast factory, logger, progress bars, and how
    its ranks combine what each saw (`reduce_sum`: calibration statistics summed over the ranks;
    `from_main`: a tensor made rank 0's; both identities in one process; `rewrap`: wraps the
    model again once its trainable parameters changed, as DDP registers them when it wraps)."""

    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    logger: Logger
    progress: bool = False
    reduce_sum: Reduce = local_only
    from_main: Reduce = local_only
    rewrap: Callable[[nn.Module], object] = local_only  # the identity, in one process


@dataclass(frozen=True)
class PhaseSpec:
    """What a training phase is: its name (the metric prefix), length and cadence.

    Attributes:
        name: ``train`` (dense, tracked) or ``finetune`` (masked); prefixes ``<name>/loss``.
        steps: optimizer steps in the phase.
        lr_at: the learning rate at a 0-based step of the phase (a pure function).
        step_offset: global step of the phase's first step (logged steps are global).
        grad_clip: max gradient norm (0: no clipping).
        eval_every: steps between validation evaluations inside the phase (0: none).
        log_every: steps between logged training losses.
        eval_every_tokens: also evaluate each time the run's training tokens cross a multiple
            of this (0: never), so runs with other phase lengths share the token axis.
        tokens_before: the run's training tokens before this phase (its token axis starts there).
    """

    name: str
    steps: int
    lr_at: Callable[[int], float]
    step_offset: int = 0
    grad_clip: float = 0.0
    eval_every: int = 0
    log_every: int = 10
    eval_every_tokens: int = 0
    tokens_before: int = 0

    def tokens_at(self, done: int, tokens_per_step: int) -> int:
        """The run's training tokens once `done` steps of this phase are done."""
        return self.tokens_before + done * tokens_per_step

    def evaluates_after(self, step: int, tokens_per_step: int) -> bool:
        """Whether the phase evaluates after its 0-based `step` (never after its last: the
        run's stage evaluation follows the phase)."""
        done = step + 1
        if done >= self.steps:
            return False
        if self.eval_every and done % self.eval_every == 0:
            return True
        every = self.eval_every_tokens
        now = self.tokens_at(done, tokens_per_step)
        return bool(every) and now // every > (now - tokens_per_step) // every


def train_phase(
    model: nn.Module,
    task,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    spec: PhaseSpec,
    where: Placement,
    *,
    start_step: int = 0,
    masks: MaskSet | None = None,
    after_step: Callable[[int], None] | None = None,
    objective: Objective | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
) -> dict[str, float]:
    """Runs `spec.steps` optimizer steps; returns the phase's throughput and last training loss.

    A step, in this order (the method's contract): forward (`objective`, e.g. distillation, or
    `task.loss`), backward, zero the pruned weights' gradients, clip, step, re-zero them, log
    (with the objective's named terms), `after_step` (tracking points, checkpoints: after the log
    line, so a resumed metrics.jsonl misses none), then an evaluation when one is due
    (`PhaseSpec.evaluates_after`, handed to `on_eval(tokens, metrics)`). A resumed phase starts
    at `start_step` with the optimizer and `generator` restored, so it draws the same batches and
    learning rates as an uninterrupted one; an evaluation due at the checkpoint's step is made first.
    """
    model.train()
    bar = tqdm(total=spec.steps, initial=start_step, desc=spec.name, disable=not where.progress,
               dynamic_ncols=True, leave=False)
    tokens = 0
    compute_s = 0.0
    last_loss = math.nan
    tps = task.tokens_per_batch
    if start_step and spec.evaluates_after(start_step - 1, tps):
        _evaluate_in_phase(task, model, spec, where, start_step - 1, on_eval)
    for step in range(start_step, spec.steps):
        t0 = time.perf_counter()
        lr = spec.lr_at(step)
        loss, terms = _optimizer_step(model, task, optimizer, where, spec.grad_clip, masks, lr, generator, objective)
        tokens += task.tokens_per_batch
        if (step + 1) % spec.log_every == 0 or step + 1 == spec.steps:
            last_loss = _log_loss(where.logger, spec, step, loss, lr, tokens, compute_s + time.perf_counter() - t0,
                                  terms)
            bar.set_postfix(loss=f"{last_loss:.4f}")
        if after_step is not None:
            after_step(step)
        compute_s += time.perf_counter() - t0
        bar.update(1)
        if spec.evaluates_after(step, tps):
            _evaluate_in_phase(task, model, spec, where, step, on_eval)
    bar.close()
    return {"tokens_per_s": tokens / compute_s if compute_s else 0.0, "last_loss": last_loss, "seconds": compute_s}


def _evaluate_in_phase(task, model: nn.Module, spec: PhaseSpec, where: Placement, step: int, on_eval) -> None:
    """A validation evaluation inside the phase, logged with the run's training tokens so far."""
    metrics = evaluate(task, model, where.device, where.autocast, f"evaluate ({spec.name})", where.progress)
    tokens = spec.tokens_at(step + 1, task.tokens_per_batch)
    where.logger.log({f"val/{k}": v for k, v in metrics.items()} | {"phase": spec.name, "tokens": tokens},
                     step=spec.step_offset + step)
    if on_eval is not None:
        on_eval(tokens, metrics)
    model.train()


def _optimizer_step(model: nn.Module, task, optimizer, where: Placement, grad_clip: float, masks: MaskSet | None,
                    lr: float, generator: torch.Generator, objective: Objective | None = None):
    """One step in the method's order: forward, backward, mask gradients, clip, step, re-mask.
    Returns the loss and the objective's terms (none without an objective)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = task.train_batch(generator, where.device)
    terms: dict[str, torch.Tensor] = {}
    with where.autocast():
        if objective is None:
            loss = task.loss(model, batch)
        else:
            loss, terms = objective(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if masks is not None:
        masks.mask_grads()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if masks is not None:
        masks.enforce()
    return loss, terms


def _log_loss(logger: Logger, spec: PhaseSpec, step: int, loss: torch.Tensor, lr: float, tokens: int,
              seconds: float, terms: dict[str, torch.Tensor] | None = None) -> float:
    """The one host sync per log interval; a non-finite loss stops the run here."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(f"{spec.name}: loss is {value} at step {spec.step_offset + step}")
    parts = {f"{spec.name}/{k}": float(v) for k, v in (terms or {}).items()}
    logger.log({f"{spec.name}/loss": value} | parts | {"lr": lr, "tokens_per_s": tokens / seconds, "phase": spec.name},
               step=spec.step_offset + step)
    return value
