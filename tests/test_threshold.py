"""Eq. 2 (per-layer std threshold), masks, target sparsity and the sparsity measure."""

import math

import pytest
import torch

from swp.pruning.threshold import (
    keep_mask,
    masks_from_scores,
    prune_rate_for_sparsity,
    sparsity,
    spreads,
)


def test_threshold_is_std_of_abs_times_rate():
    # |w| = 1,2,3,4 -> unbiased std = sqrt(5/3) = 1.2910; x 2.0 = 2.5820: keep 3 and 4 only.
    w = torch.tensor([-1.0, 2.0, -3.0, 4.0])
    spread = spreads({"a": w}, "layer")
    assert spread["a"] == pytest.approx(math.sqrt(5 / 3))
    keep, thr = masks_from_scores({"a": w.abs()}, spread, 2.0)
    assert thr["a"] == pytest.approx(2 * math.sqrt(5 / 3))
    assert keep["a"].tolist() == [False, False, True, True]


def test_prune_rate_zero_keeps_all_nonzero():
    w = torch.tensor([0.0, 0.1, -0.2])
    keep, _ = masks_from_scores({"a": w}, spreads({"a": w}, "layer"), 0.0)
    assert keep["a"].tolist() == [False, True, True]


def test_layer_scope_uses_each_tensors_own_spread():
    small = torch.tensor([0.01, 0.02, 0.03, 0.04])
    big = small * 100
    keep, _ = masks_from_scores({"s": small, "b": big}, spreads({"s": small, "b": big}, "layer"), 2.0)
    assert keep["s"].tolist() == keep["b"].tolist() == [False, False, True, True]


def test_global_scope_shares_one_spread():
    small = torch.tensor([0.01, 0.02, 0.03, 0.04])
    big = small * 100
    s = spreads({"s": small, "b": big}, "global")
    assert s["s"] == s["b"] == pytest.approx(float(torch.cat([small, big]).std()))
    keep, _ = masks_from_scores({"s": small, "b": big}, s, 0.5)
    assert not keep["s"].any() and keep["b"].all()


def test_keep_is_strictly_greater():
    assert keep_mask(torch.tensor([1.0, 1.0001]), 1.0).tolist() == [False, True]


@pytest.mark.parametrize("target", [0.0, 0.1, 0.37, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_target_sparsity_is_hit_within_one_weight_per_layer(target, scope):
    g = torch.Generator().manual_seed(1)
    scores = {f"l{i}": torch.randn(64 * (i + 1), 16, generator=g).abs() * (i + 1) for i in range(4)}
    spread = spreads(scores, scope)
    rate = prune_rate_for_sparsity(scores, spread, target)
    keep, _ = masks_from_scores(scores, spread, rate)
    pruned = sum(int((~k).sum()) for k in keep.values())
    total = sum(k.numel() for k in keep.values())
    assert abs(pruned - round(target * total)) <= len(scores)


def test_target_sparsity_rejects_out_of_range():
    with pytest.raises(ValueError):
        prune_rate_for_sparsity({"a": torch.ones(3)}, {"a": 1.0}, 1.0)


def test_sparsity_counts_zeros_over_elements():
    assert sparsity([torch.tensor([0.0, 1.0]), torch.zeros(2)]) == 0.75
    assert sparsity([]) == 0.0
