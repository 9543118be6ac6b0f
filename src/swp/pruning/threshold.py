"""Eq. 2 of the paper: keep a weight when its score exceeds std(|score|) * prune_rate.

The rule is split into a per-tensor *spread* (the std the threshold is made of) and the score
compared with it, so one function serves SWP (score = importance), the authors' variant
(score = current |W|, spread from importance) and magnitude pruning (both from |W|).

Sharded scores (FSDP2 DTensors, see `swp.distributed.sharding`): the only hook is `full(.)`
where a whole tensor's statistic is taken (std, critical rates; one tensor gathered at a time,
so the memory is that of the largest tensor) and `count(.)` for zeros; both are no-ops on plain
tensors. Every rank thus computes bit-identical spreads and rates, the masks equal one
process's exactly, and `keep_mask` on a DTensor stays local (a mask placed like its weight).
"""

from __future__ import annotations

import math
import warnings

import torch

from swp.distributed.sharding import count, distribute_like, full


def spreads(scores: dict[str, torch.Tensor], scope: str, absolute: bool = True) -> dict[str, float]:
    """std(|score|) per tensor (``layer``) or one std over all tensors together (``global``);
    ``absolute=False`` takes the std of the signed values (the authors' code's spread).

    Uses the unbiased std (torch's default, as the authors' PyTorch code); a one-element
    tensor has no spread and gets 0, so it is pruned only when its score is 0. Sharded
    (DTensor) scores are gathered one tensor at a time, so the spread is the one-process spread.
    """
    def values(s: torch.Tensor) -> torch.Tensor:
        return (full(s).abs() if absolute else full(s)).flatten()

    if scope == "layer":
        return {n: _std(values(s)) for n, s in scores.items()}
    if scope == "global":
        everything = torch.cat([values(s).float() for s in scores.values()])
        g = _std(everything)
        return {n: g for n in scores}
    raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")


def _std(x: torch.Tensor) -> float:
    return float(x.float().std()) if x.numel() > 1 else 0.0


def keep_mask(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """True where the weight is kept: |score| strictly above the threshold.

    Compared in float64: a bf16 score against a Python float would round the threshold to
    bf16 and move it across a whole run of tied values.
    """
    return score.detach().abs().double() > threshold


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

    A weight is pruned once prune_rate >= |score| / spread of its tensor, so the K-th and
    (K+1)-th smallest of these critical rates over all tensors give the exact answer without a
    search: their midpoint prunes exactly K weights (barring ties). The order statistics are
    found tensor by tensor (`_kth_smallest`), never by concatenating every rate, so the memory
    is that of the largest tensor, not of the model (a 7B model has 6.5B rates).
    """
    rates = _RateSource(scores, spread)
    total = rates.numel
    k = _reachable_count(rates, target)
    if k == 0:
        return 0.0 if total == 0 else rates.min() / 2
    lo, nxt = _kth_smallest(rates, k)
    hi = nxt if k < total else lo * 2 + 1.0
    return lo + (hi - lo) / 2 if math.isfinite(hi) else lo * 2 + 1.0


def masks_at_sparsity(
    scores: dict[str, torch.Tensor], spread: dict[str, float], target: float
) -> tuple[dict[str, torch.Tensor], dict[str, float], float]:
    """Keep-masks pruning exactly round(target * N) of the N scored weights by Eq. 2's order.

    The pruned weights are those of lowest critical rate |score| / spread; where the boundary
    falls inside a run of equal rates (ties are common in bf16 scores) the earlier weights are
    pruned first (tensor order, then flat index), so the count is exact whatever the dtype. A
    target beyond what any finite rate reaches (tensors of zero spread keep their non-zero
    weights) prunes the largest reachable count, with a warning.

    Returns:
        (keep masks, thresholds spread * rate, rate): rate is the critical rate of the last
        pruned weight (0 when nothing is pruned).
    """
    rates = _RateSource(scores, spread)
    k = _reachable_count(rates, target)
    if k == 0:
        return ({n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()},
                {n: 0.0 for n in scores}, 0.0)
    kth, _ = _kth_smallest(rates, k)
    need = k - sum(int((r < kth).sum()) for r in rates)
    keep = {}
    for (name, score), r in zip(scores.items(), rates):
        pruned = r < kth
        ties = torch.nonzero(r == kth).flatten()[:need]
        pruned[ties] = True
        need -= ties.numel()
        keep[name] = distribute_like(~pruned.view(score.shape), score)  # placed like a sharded score
    return keep, {n: spread[n] * kth for n in scores}, kth


def pruned_fraction_at_rate(scores: dict[str, torch.Tensor], spread: dict[str, float], rate: float) -> float:
    """The fraction of all scored weights that Eq. 2 prunes at `rate` (0 for no weights)."""
    total = sum(s.numel() for s in scores.values())
    pruned = sum(int((~keep_mask(s, spread[n] * rate)).sum()) for n, s in scores.items())
    return pruned / total if total else 0.0


def lowest_fraction_keep(score: torch.Tensor, fraction: float, per_row: bool = False) -> torch.Tensor:
    """Keep-mask pruning the round(fraction * n) lowest |score| of the tensor, or of every row
    (the last dim) when `per_row`, by rank: exact counts whatever the ties (the earlier of
    equal scores is pruned first, as a stable ascending sort orders them).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    s = score.detach().abs()
    rows = s.reshape(-1, s.shape[-1]) if per_row and s.dim() else s.reshape(1, -1)
    k = int(round(fraction * rows.shape[1]))
    keep = torch.ones(rows.shape, dtype=torch.bool, device=s.device)
    if k:
        keep.scatter_(1, torch.sort(rows, dim=1, stable=True).indices[:, :k], False)
    return keep.view(score.shape)


def row_normalized(score: torch.Tensor) -> torch.Tensor:
    """|score| / std(|score|) of its row (the last dim), so Eq. 2 at spread 1 compares each
    weight with its own row's spread. A row of zero spread keeps its non-zero entries (inf)
    and prunes its zeros (0), as `_critical_rates` treats a tensor of zero spread."""
    s = score.detach().abs().float()
    std = s.std(dim=-1, keepdim=True) if s.shape[-1] > 1 else torch.zeros_like(s[..., :1])
    out = s / std.clamp_min(torch.finfo(torch.float32).tiny)
    return torch.where(std > 0, out, torch.where(s == 0, torch.zeros_like(s), torch.full_like(s, math.inf)))


def _reachable_count(rates: "_RateSource", target: float) -> int:
    """round(target * N), capped (with a warning) at the weights some finite rate prunes."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target}")
    k = int(round(target * rates.numel))
    finite = sum(int(torch.isfinite(r).sum()) for r in rates)
    if k > finite:
        warnings.warn(
            f"target sparsity {target} is not reachable by the threshold rule: only {finite} of "
            f"{rates.numel} weights can be pruned (tensors of zero spread keep their non-zero "
            f"weights); pruning those {finite / rates.numel:.4%}",
            stacklevel=3,
        )
        k = finite
    return k


class _RateSource:
    """The critical rates of every scored weight, computed one tensor at a time on demand."""

    def __init__(self, scores: dict[str, torch.Tensor], spread: dict[str, float]):
        self.items = [(s, spread[n]) for n, s in scores.items()]
        self.numel = sum(s.numel() for s, _ in self.items)

    def __iter__(self):
        for score, spread in self.items:
            yield _critical_rates(score, spread)

    def min(self) -> float:
        return min(float(r.min()) for r in self if r.numel())


def _kth_smallest(rates: _RateSource, k: int, cap: int = 1 << 20, splits: int = 1023) -> tuple[float, float]:
    """The k-th and (k+1)-th smallest (1-based) critical rates, exactly, in a few passes over
    the tensors (the second is inf when there are only k rates).

    Each pass buckets the rates of the interval known to hold the answer between `splits`
    thresholds (one searchsorted per tensor), keeping each bucket's count, min and max, and
    narrows the interval to one bucket; once it holds at most `cap` rates (or only equal ones)
    they are gathered and sorted.
    """
    below, lo, hi = 0, -math.inf, math.inf  # the answer lies in (lo, hi]; `below` rates are <= lo
    inside, vmin, vmax = 0, math.inf, -math.inf
    for r in rates:
        if r.numel():
            inside += r.numel()
            vmin, vmax = min(vmin, float(r.min())), max(vmax, float(r.max()))
    while vmin != vmax and inside > cap:
        if math.isinf(vmax):  # infinite rates (zero spread) sit above every finite split
            vmax = max((float(r[(r > lo) & torch.isfinite(r)].max()) for r in rates
                        if bool(((r > lo) & torch.isfinite(r)).any())), default=vmin)
        split_points = torch.linspace(vmin, vmax, splits if vmax > vmin else 1, dtype=torch.float64)
        n = len(split_points) + 1  # bucket j holds (split[j-1], split[j]]; the last, the rest
        counts = torch.zeros(n, dtype=torch.int64)
        bmin = torch.full((n,), math.inf, dtype=torch.float64)
        bmax = torch.full((n,), -math.inf, dtype=torch.float64)
        for r in rates:
            r = r[(r > lo) & (r <= hi)]
            bucket = torch.searchsorted(split_points.to(r.device), r, right=False)
            counts += torch.bincount(bucket, minlength=n).cpu()
            bmin = torch.minimum(bmin, torch.full((n,), math.inf, dtype=r.dtype, device=r.device)
                                 .scatter_reduce_(0, bucket, r, "amin").cpu())
            bmax = torch.maximum(bmax, torch.full((n,), -math.inf, dtype=r.dtype, device=r.device)
                                 .scatter_reduce_(0, bucket, r, "amax").cpu())
        cumulative = counts.cumsum(0)
        j = int(torch.searchsorted(cumulative, torch.tensor(k - below), right=False))
        below += int(cumulative[j - 1]) if j > 0 else 0
        lo = float(split_points[j - 1]) if j > 0 else lo
        hi = float(split_points[j]) if j < len(split_points) else hi
        inside, vmin, vmax = int(counts[j]), float(bmin[j]), float(bmax[j])
    if vmin == vmax:
        kth = vmin
    else:
        gathered = torch.sort(torch.cat([r[(r > lo) & (r <= hi)] for r in rates])).values
        kth = float(gathered[k - below - 1])
        if k - below < inside:
            return kth, float(gathered[k - below])
    if k - below < inside:  # the interval holds equal rates beyond the k-th
        return kth, kth
    above = [float(r[r > hi].min()) for r in rates if bool((r > hi).any())]
    return kth, min(above, default=math.inf)


def _critical_rates(score: torch.Tensor, spread: float) -> torch.Tensor:
    s = full(score).detach().abs().flatten().double()
    if spread > 0:
        return s / spread
    # No spread: the threshold is 0 whatever the rate, so only exact zeros are ever pruned.
    return torch.where(s == 0, torch.zeros_like(s), torch.full_like(s, math.inf))


def sparsity(tensors: list[torch.Tensor]) -> float:
    """zeros / elements over the given tensors (0 for an empty list)."""
    total = sum(t.numel() for t in tensors)
    zeros = sum(count(t, lambda x: x == 0) for t in tensors)
    return zeros / total if total else 0.0
