"""Eq. 1 of the paper: importance as a weighted average of a weight's history.

Imp_i = sum_{L=0..k} val_i(n-L) * (n-L) / sum_{L=0..k} (n-L), tracking points numbered from 1,
so a later point counts more. Two exact forms are given: the online "clone" over all points
(one extra tensor per weight) and a finite window over the last k+1 snapshots.
"""

from __future__ import annotations

from typing import Sequence

import torch

from swp.pruning.threshold import spreads


def tracked_value(weight: torch.Tensor, average_of: str) -> torch.Tensor:
    """The value averaged at a tracking point: |w| (``magnitude``) or w itself (``signed``)."""
    if average_of == "magnitude":
        return weight.abs()
    if average_of == "signed":
        return weight
    raise ValueError(f"average_of must be 'magnitude' or 'signed', got {average_of!r}")


def update_clone_(clone: torch.Tensor, value: torch.Tensor, t: int) -> torch.Tensor:
    """Folds tracking point ``t`` (1-based) into the running weighted average, in place.

    C_t = (C_{t-1} * S_{t-1} + t * W_t) / S_t with S_t = t(t+1)/2 simplifies to
    C_t = C_{t-1} * (t-1)/(t+1) + W_t * 2/(t+1), which needs no stored S and stays exact at t=1.
    """
    if t < 1:
        raise ValueError(f"tracking points are numbered from 1, got {t}")
    clone.mul_((t - 1) / (t + 1)).add_(value.to(clone.dtype), alpha=2.0 / (t + 1))
    return clone


def update_clones_(clones: list[torch.Tensor], values: list[torch.Tensor], t: int) -> None:
    """`update_clone_` over many tensors with two fused foreach kernels (cheap at every size)."""
    if t < 1:
        raise ValueError(f"tracking points are numbered from 1, got {t}")
    torch._foreach_mul_(clones, (t - 1) / (t + 1))
    torch._foreach_add_(clones, [v.to(c.dtype) for v, c in zip(values, clones)], alpha=2.0 / (t + 1))


def windowed_importance(snapshots: Sequence[torch.Tensor], points: Sequence[int]) -> torch.Tensor:
    """Eq. 1 over an explicit window: sum_t t * v(t) / sum_t t.

    Args:
        snapshots: the tracked values, one tensor per tracking point in the window.
        points: the 1-based tracking point of each snapshot (its weight in the average).
    """
    if len(snapshots) != len(points) or not snapshots:
        raise ValueError("need one point number per snapshot, and at least one snapshot")
    total = float(sum(points))
    out = torch.zeros_like(snapshots[0], dtype=torch.float32)
    for value, t in zip(snapshots, points):
        out.add_(value.float(), alpha=t / total)
    return out


def signed_spreads(values: dict[str, torch.Tensor], scope: str) -> dict[str, float]:
    """std of the signed values per tensor (``layer``) or over all tensors (``global``).

    The authors' code (torchpruner 0.0.5) thresholds at std(clone) * rate with the clone the
    signed weighted average, where Eq. 2 as written takes std(|.|); the two differ whenever the
    average has both signs (``average_of: signed``). Unbiased std, 0 for a one-element tensor,
    as `swp.pruning.threshold.spreads`.
    """
    return spreads(values, scope, absolute=False)
