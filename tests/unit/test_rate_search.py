"""target_sparsity's rate search finds order statistics tensor by tensor (no concatenation of
every rate, which would need 8 bytes per weight: 52 GB for a 7B model); it must give exactly
what sorting all the rates gives."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from swp.pruning.threshold import _critical_rates, _kth_smallest, _RateSource, prune_rate_for_sparsity, spreads


def _reference(scores, spread, target):
    """The definition: midpoint of the K-th and (K+1)-th smallest critical rates, by a full sort;
    K is capped at the finite rates (an unreachable target prunes what it can, never all)."""
    rates = torch.sort(torch.cat([_critical_rates(s, spread[n]) for n, s in scores.items()])).values
    k = min(int(round(target * rates.numel())), int(torch.isfinite(rates).sum()))
    if k == 0:
        return float(rates[0]) / 2
    lo = float(rates[k - 1])
    hi = float(rates[k]) if k < rates.numel() else lo * 2 + 1.0
    return lo + (hi - lo) / 2 if math.isfinite(hi) else lo * 2 + 1.0


def _cases():
    g = torch.Generator().manual_seed(0)
    yield {"a": torch.randn(300, generator=g).abs(), "b": torch.randn(40, 5, generator=g).abs() * 1e-3}
    yield {"ties": torch.randint(0, 4, (500,), generator=g).float(), "b": torch.tensor([1.0, 1.0, 2.0])}
    yield {"zeros": torch.zeros(50), "b": torch.randn(100, generator=g)}  # zero spread -> inf rates
    yield {"one": torch.tensor([3.0]), "b": torch.rand(64, generator=g)}


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("cap, splits", [(1 << 20, 1023), (3, 2), (1, 5)])  # small: forces many passes
def test_order_statistics_equal_a_full_sort(case, cap, splits):
    scores = list(_cases())[case]
    spread = spreads(scores, "layer")
    rates = _RateSource(scores, spread)
    full = torch.sort(torch.cat(list(rates))).values
    for k in (1, 2, rates.numel // 3, rates.numel // 2, rates.numel - 1, rates.numel):
        expected = (float(full[k - 1]), float(full[k]) if k < rates.numel else math.inf)
        assert _kth_smallest(rates, k, cap=cap, splits=splits) == expected


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("target", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_rate_for_sparsity_equals_the_sorted_definition(case, target):
    scores = list(_cases())[case]
    spread = spreads(scores, "layer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # case 3 at 0.999 is unreachable: its warning is tested in test_threshold
        got = prune_rate_for_sparsity(scores, spread, target)
    want = _reference(scores, spread, target)
    assert got == want and math.isfinite(got)
