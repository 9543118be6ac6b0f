"""OWL, outlier-weighed layer-wise sparsity (Yin et al. 2023, arXiv 2310.05175): the pure math.

A layer (a transformer block) whose Wanda scores |W_ij| * ||X_j||_2 hold more outliers (scores
above M times the layer's mean score) is pruned less. As the reference (luuyin/OWL,
``prune_wanda_outlier``): the layers' outlier ratios are min-max scaled into [0, 2 lambda], and
each layer's density is its scaled ratio shifted so that the mean sparsity is the target:

    x_l = 2 lambda (r_l - min r) / (max r - min r),   s_l = target + mean(x) - x_l

so the sparsities span 2 lambda, the layer with the most outliers is the least sparse, and the
mean is the target. Two departures, both no-ops on the reference's models: the mean is weighted
by each layer's number of pruned weights (so the total pruned count is the target's even when
layers differ in size; LLaMA's blocks are all the same size), and where a sparsity would leave
[0, 1] (a target near 0 or 1 with a large lambda; the reference fails or clips to 0.01 there)
the sparsities are clipped and the others shifted by one common amount until the weighted mean
is the target again.
"""

from __future__ import annotations

from typing import Sequence

import torch


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """The fraction of a layer's scores above `m` times their mean, all its tensors together.

    Args:
        scores: the layer's score tensors (Wanda's |W| * ||X||), taken as one flat set.
        m: OWL's M: how many times the layer's mean score makes an outlier.
    """
    total = sum(s.numel() for s in scores)
    if total == 0:
        return 0.0
    mean = sum(float(s.sum(dtype=torch.float64)) for s in scores) / total
    return sum(int((s.double() > m * mean).sum()) for s in scores) / total


def owl_sparsities(ratios: Sequence[float], sizes: Sequence[int], target: float, lam: float) -> list[float]:
    """Each layer's sparsity from its outlier ratio (see the module docstring).

    Args:
        ratios: outlier ratio per layer, in the model's order.
        sizes: pruned weights per layer (the weights of the mean).
        target: the mean sparsity, weighted by `sizes`.
        lam: OWL's lambda: the sparsities span 2 * lam (before any clipping into [0, 1]).

    Returns:
        One sparsity per layer, in [0, 1], with sum(size * sparsity) = target * sum(size) (to
        float rounding). Equal ratios (or a single layer, or lam = 0) give every layer the target.
    """
    if len(ratios) != len(sizes) or not ratios:
        raise ValueError(f"need one size per ratio, got {len(ratios)} ratios and {len(sizes)} sizes")
    r = torch.tensor(ratios, dtype=torch.float64)
    w = torch.tensor(sizes, dtype=torch.float64)
    spread = float(r.max() - r.min())
    if spread == 0.0 or lam == 0.0:
        return [float(target)] * len(ratios)
    x = (r - r.min()) / spread * (2.0 * lam)
    s = target + float((x * w).sum() / w.sum()) - x
    return clipped_to_unit(s, w, target).tolist()


def clipped_to_unit(s: torch.Tensor, w: torch.Tensor, target: float) -> torch.Tensor:
    """`s` unchanged when it lies in [0, 1]; else clamp(s + c, 0, 1) with the one shift c that
    keeps the `w`-weighted mean at `target` (found by bisection: the mean rises with c)."""
    if bool(((s >= 0) & (s <= 1)).all()):
        return s

    def mean_at(c: float) -> float:
        return float((torch.clamp(s + c, 0.0, 1.0) * w).sum() / w.sum())

    lo, hi = -1.0 - float(s.max()), 1.0 - float(s.min())  # mean 0 at lo, 1 at hi
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_at(mid) < target else (lo, mid)
    return torch.clamp(s + hi, 0.0, 1.0)
