"""Phase lengths and learning-rate schedules, as plain data and pure functions of the step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Annotated

from swp.config_types import Count, Count0, Fraction, Options, Range, check_arguments
from swp.errors import ConfigError


def cosine_lr(step: int, peak: float, floor: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to `floor` at `total`."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return floor
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


# Marks the fields the dense stage depends on, so the dense-cache key is derived from the
# schedule itself (a new dense field joins the key by being marked, nowhere else).
DENSE = {"stage": "dense"}

LR = Annotated[float, Range(0, 1, lo_open=True, why="AdamW moves each weight by about lr per step")]
MinLR = Annotated[float, Range(0, 1)]


@dataclass
class Schedule:
    """The order of phases is fixed (train with tracking -> prune -> fine-tune -> evaluate);
    this says how long each phase is and how it is optimised. ``one_shot`` is finetune_steps=0.

    Attributes:
        train_steps: dense training steps, during which the pruner tracks the weights.
        track_every: steps between tracking points (the paper's "epochs"); the last step is
            always a tracking point.
        finetune_steps: steps of fine-tuning with the masks enforced; 0 evaluates right after
            pruning.
        lr, min_lr, warmup_steps: AdamW schedule of the dense phase (cosine to min_lr).
        finetune_lr, finetune_min_lr, finetune_warmup_steps: the same for fine-tuning.
        weight_decay, beta1, beta2, grad_clip: AdamW and clipping (0 disables clipping).
        eval_every: steps between validation evaluations inside a phase (0: only at the ends).
        eval_every_tokens: also evaluate each time the run's training tokens (dense, pruning
            phase and recovery together) cross a multiple of this (0: off): runs whose phases
            differ in length share one token axis (results.json ``curve``).
        log_every: steps between logged training losses.
        eval_initial: also evaluate before any training (``initial_val_*``), for pretrained
            models whose starting score is the published baseline.
    """

    train_steps: Count0 = field(default=1500, metadata=DENSE)
    track_every: Count = field(default=15, metadata=DENSE)
    finetune_steps: Count0 = 300
    lr: LR = field(default=1e-3, metadata=DENSE)
    min_lr: MinLR = field(default=1e-4, metadata=DENSE)
    warmup_steps: Count0 = field(default=100, metadata=DENSE)
    finetune_lr: LR = 3e-4
    finetune_min_lr: MinLR = 3e-5
    finetune_warmup_steps: Count0 = 20
    weight_decay: Annotated[float, Range(0)] = field(default=0.1, metadata=DENSE)
    beta1: Fraction = field(default=0.9, metadata=DENSE)
    beta2: Fraction = field(default=0.99, metadata=DENSE)
    grad_clip: Annotated[float, Range(0, why="0 disables clipping")] = field(default=1.0, metadata=DENSE)
    eval_every: Count0 = field(default=500, metadata=DENSE)
    log_every: Count = field(default=10, metadata=DENSE)
    eval_initial: bool = field(default=False, metadata=DENSE)
    eval_every_tokens: Count0 = field(default=0, metadata=DENSE)

    def __post_init__(self):
        check_arguments(Schedule, vars(self), at="schedule")

    @classmethod
    def check_options(cls, given: Options) -> None:
        """A learning rate's floor is below its peak; AdamW's decay never flips a weight's sign."""
        for low, high in (("min_lr", "lr"), ("finetune_min_lr", "finetune_lr")):
            if getattr(given, low) > getattr(given, high):
                raise given.refuse(low, f"<= {given.key(high)} ({getattr(given, high)!r})")
        for lr in ("lr", "finetune_lr"):
            if getattr(given, lr) * given.weight_decay >= 1:
                raise ConfigError(
                    f"{given.key('weight_decay')} must be below 1 / {given.key(lr)} (AdamW multiplies each weight by "
                    f"1 - lr * weight_decay every step); got {given.weight_decay!r} with {lr}={getattr(given, lr)!r}"
                )

    def dense_settings(self) -> dict:
        """The fields the dense stage (its weights and every file it writes) depends on."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata == DENSE}

    def train_lr(self, step: int) -> float:
        return cosine_lr(step, self.lr, self.min_lr, self.warmup_steps, self.train_steps)

    def finetune_lr_at(self, step: int) -> float:
        return cosine_lr(step, self.finetune_lr, self.finetune_min_lr, self.finetune_warmup_steps, self.finetune_steps)

    def tracking_points(self) -> int:
        """How many tracking points the dense phase has (what a tracking pruner will see)."""
        return -(-self.train_steps // self.track_every)

    def is_tracking_point(self, step: int) -> bool:
        """Whether the pruner observes the weights after dense step `step` (0-based)."""
        return (step + 1) % self.track_every == 0 or step + 1 == self.train_steps
