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


def test_keep_mask_compares_bf16_scores_in_full_precision():
    # 1.0 and 1.0078125 are adjacent bf16 values; a threshold between them rounded to bf16
    # would land on one of them and flip every tied weight.
    s = torch.tensor([1.0, 1.0078125, 1.0078125], dtype=torch.bfloat16)
    assert keep_mask(s, 1.004).tolist() == [False, True, True]
    assert keep_mask(s, 1.0078).tolist() == [False, True, True]


@pytest.mark.parametrize("target", [0.1, 0.37, 0.5, 0.9])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_target_sparsity_is_exact_for_bf16_scores_with_ties(target, scope):
    from swp.pruning.threshold import masks_at_sparsity

    g = torch.Generator().manual_seed(2)
    # bf16 has 8 significant bits: 4096 values drawn from a few dozen distinct ones tie a lot.
    scores = {f"l{i}": (torch.rand(64, 64, generator=g) * 4).round().div(4).to(torch.bfloat16) for i in range(3)}
    spread = spreads(scores, scope)
    keep, thresholds, rate = masks_at_sparsity(scores, spread, target)
    total = sum(k.numel() for k in keep.values())
    assert sum(int((~k).sum()) for k in keep.values()) == round(target * total)
    assert all(math.isfinite(t) for t in thresholds.values())
    # What is pruned has no higher critical rate than what is kept (ties broken by position).
    crit = {n: s.double() / spread[n] for n, s in scores.items()}
    assert max(float(crit[n][~keep[n]].max()) for n in keep if (~keep[n]).any()) == rate
    assert min(float(crit[n][keep[n]].min()) for n in keep) >= rate


def test_pruner_hits_target_count_exactly_on_bf16_weights():
    from torch import nn

    from swp.pruners.simple import MagnitudePruner

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 32), nn.Linear(32, 16)).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p * 64).round() / 64)  # few distinct values: many ties
    pruner = MagnitudePruner(model)
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.6))
    total = sum(k.numel() for k in keep.values())
    assert sum(int((~k).sum()) for k in keep.values()) == round(0.6 * total)


def test_unreachable_target_warns_and_prunes_what_it_can():
    from swp.pruning.threshold import masks_at_sparsity

    scores = {"const": torch.full((10,), 0.5), "varied": torch.arange(10.0)}
    spread = spreads(scores, "layer")
    assert spread["const"] == 0.0
    with pytest.warns(UserWarning, match="not reachable"):
        rate = prune_rate_for_sparsity(scores, spread, 0.9)  # 18 of 20, but only 10 are reachable
    assert math.isfinite(rate)
    keep, thresholds = masks_from_scores(scores, spread, rate)
    assert keep["const"].all() and not keep["varied"].any()
    assert all(math.isfinite(t) for t in thresholds.values())
    with pytest.warns(UserWarning, match="not reachable"):
        keep, thresholds, _ = masks_at_sparsity(scores, spread, 0.9)
    assert keep["const"].all() and not keep["varied"].any()


def test_lowest_fraction_is_exact_per_tensor_and_per_row():
    from swp.pruning.threshold import lowest_fraction_keep

    s = torch.tensor([[4.0, 1.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0], [0.0, -9.0, 5.0, 6.0]])
    assert lowest_fraction_keep(s, 0.5, per_row=True).tolist() == [
        [True, False, True, False], [False, False, True, True], [False, True, False, True]]  # ties: earlier first
    whole = lowest_fraction_keep(s, 0.25)
    assert int((~whole).sum()) == 3 and not whole[2, 0] and not whole[0, 1]


def test_row_normalized_compares_each_row_with_its_own_spread():
    from swp.pruning.threshold import row_normalized

    s = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [5.0, 5.0, 0.0], [7.0, 7.0, 7.0]])
    out = row_normalized(s)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[0], torch.tensor([1.0, 2.0, 3.0]))
    assert out[3].isinf().all() and out[2, 2] == 0 and torch.isfinite(out[2, :2]).all()


def test_uniform_allocation_prunes_every_tensor_at_the_same_fraction():
    from torch import nn

    from swp.pruners.simple import MagnitudePruner

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.Linear(30, 20), nn.Linear(20, 10))
    with torch.no_grad():
        model[1].weight.mul_(10)  # a tensor of larger spread: shared_rate prunes it differently
    uniform = MagnitudePruner(model, allocation="uniform")
    keep, thresholds = uniform.masks(uniform.rate_for_sparsity(0.35))
    assert thresholds == {} and uniform.allocation == "uniform"
    for name, k in keep.items():
        assert int((~k).sum()) == round(0.35 * k.numel()), name
    # Given a prune_rate: the total shared_rate prunes there, spread evenly.
    shared = MagnitudePruner(model)
    total = lambda ks: sum(int((~k).sum()) for k in ks.values())  # noqa: E731
    keep_shared, _ = shared.masks(0.8)
    keep_uniform, _ = uniform.masks(0.8)
    assert abs(total(keep_uniform) - total(keep_shared)) <= len(keep_shared)
    fractions = [float((~k).float().mean()) for k in keep_uniform.values()]
    assert max(fractions) - min(fractions) < 0.01


