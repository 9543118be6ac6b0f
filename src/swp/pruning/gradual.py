"""Gradual magnitude pruning's schedule (Zhu & Gupta 2017, "To prune, or not to prune").

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3,   t in {t0, t0 + dt, ..., t0 + n * dt}

Sparsity rises fast at first, while redundant weights are plentiful, and slowly near the end.
Pure functions of the step, unit-tested at their endpoints.
"""

from __future__ import annotations

import torch


def cubic_sparsity(step: int, initial: float, final: float, start: int, end: int) -> float:
    """s_t at step `step` (steps done), with n * dt = end - start; clipped to [initial, final]
    outside [start, end]."""
    if end <= start:
        return final if step >= start else initial
    progress = min(max((step - start) / (end - start), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def is_update_step(step: int, start: int, end: int, every: int) -> bool:
    """Whether the masks are recomputed after `step` steps: every `every` steps from `start`,
    and always at `end` (so the final sparsity is reached even when end - start is not a
    multiple of `every`)."""
    return start <= step <= end and ((step - start) % every == 0 or step == end)


def straight_through_step_(shadow: torch.Tensor, weight: torch.Tensor, keep: torch.Tensor, decay: float) -> None:
    """Hands an optimizer step taken on the masked weight to its dense shadow, in place.

    The forward saw ``weight = shadow * keep``, so the gradient of every entry, pruned ones too,
    is the straight-through gradient of the shadow (SR-STE, AST). A pruned entry held 0 before
    the step, so after it the weight holds exactly the step's update; AdamW's decoupled decay
    ``1 - lr * weight_decay`` (`decay`), which the 0 did not feel, is applied to the shadow
    here. Kept entries: the shadow is the weight. The weight is then masked again (+0.0 for
    pruned entries, as `MaskSet.enforce`).
    """
    shadow.copy_(torch.where(keep, weight, shadow * decay + weight))
    weight.mul_(keep).add_(0.0)


def flipped(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """Where two keep-masks disagree (a weight pruned or brought back by a mask update)."""
    return old != new
