"""Eq. 2 of the paper: keep a weight when its score exceeds std(|score|) * prune_rate.

The rule is split into a per-tensor *spread* (the std the threshold is made of) and the score
compared with it, so one function serves SWP (score = importance), the authors' variant
(score = current |W|, spread from importance) and magnitude pruning (both from |W|).
"""

from __future__ import annotations

import math

import torch


def spreads(scores: dict[str, torch.Tensor], scope: str) -> dict[str, float]:
    """std(|score|) per tensor (``layer``) or one std over all tensors together (``global``).

    Uses the unbiased std (torch's default, as the authors' PyTorch code); a one-element
    tensor has no spread and gets 0, so it is pruned only when its score is 0.
    """
    if scope == "layer":
        return {n: _std(s.abs().flatten()) for n, s in scores.items()}
    if scope == "global":
        everything = torch.cat([s.abs().flatten().float() for s in scores.values()])
        g = _std(everything)
        return {n: g for n in scores}
    raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")


def _std(x: torch.Tensor) -> float:
    return float(x.float().std()) if x.numel() > 1 else 0.0


def keep_mask(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """True where the weight is kept: |score| strictly above the threshold."""
    return score.abs() > threshold


def masks_from_scores(
    scores: dict[str, torch.Tensor], spread: dict[str, float], prune_rate: float
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Applies Eq. 2 to every tensor; returns (keep masks, thresholds)."""
    thresholds = {n: spread[n] * prune_rate for n in scores}
    return {n: keep_mask(s, thresholds[n]) for n, s in scores.items()}, thresholds


def prune_rate_for_sparsity(
    scores: dict[str, torch.Tensor], spread: dict[str, float], target: float
) -> float:
    """The prune_rate at which Eq. 2 prunes round(target * N) of the N scored weights.

    A weight is pruned once prune_rate >= |score| / spread of its tensor, so sorting these
    critical rates over all tensors gives the exact answer without a search: the midpoint
    between the K-th and (K+1)-th critical rate prunes exactly K weights (barring ties).
    """
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target}")
    rates = torch.cat([_critical_rates(s, spread[n]) for n, s in scores.items()])
    k = int(round(target * rates.numel()))
    if k == 0:
        return 0.0 if rates.numel() == 0 else float(rates.min()) / 2
    top = torch.topk(rates, k + 1 if k < rates.numel() else k, largest=False).values
    lo = float(top[k - 1])
    hi = float(top[k]) if k < rates.numel() else lo * 2 + 1.0
    return lo + (hi - lo) / 2 if math.isfinite(hi) else lo * 2 + 1.0


def _critical_rates(score: torch.Tensor, spread: float) -> torch.Tensor:
    s = score.detach().abs().flatten().double()
    if spread > 0:
        return s / spread
    # No spread: the threshold is 0 whatever the rate, so only exact zeros are ever pruned.
    return torch.where(s == 0, torch.zeros_like(s), torch.full_like(s, math.inf))


def sparsity(tensors: list[torch.Tensor]) -> float:
    """zeros / elements over the given tensors (0 for an empty list)."""
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return zeros / total if total else 0.0
