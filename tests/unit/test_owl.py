"""OWL (``allocation: owl``): outlier ratios and block sparsities against hand-computed values and a
transcription of the reference's formula, the allocation each pruner makes on a tiny model
against a brute-force measurement, and the one-line refusals."""

from __future__ import annotations

import math

import pytest
import torch

from swp.errors import ConfigError
from swp.pruning.owl import outlier_ratio, owl_sparsities
from swp.testing.blocks import TwoBlocks, batches, forward
from swp.testing.tiny import TINY, compose_cfg

# ---------------------------------------------------------------------------------------------
# The math, by hand


@pytest.mark.parametrize("scores, m, expected", [
    # mean 3, threshold 6: only the 9 is an outlier
    ([[1.0, 1.0, 1.0, 9.0]], 2.0, 1 / 4),
    # the mean runs over the block's tensors together: 18 / 6 = 3, threshold 6 -> the 13
    ([[1.0, 1.0], [1.0, 1.0, 1.0, 13.0]], 2.0, 1 / 6),
    # a score equal to M x mean is not an outlier (strictly above, as the reference)
    ([[2.0, 2.0, 2.0, 6.0]], 2.0, 0.0),
    # every score above M x mean is impossible for M >= 1; M < 1 makes most of them outliers
    ([[1.0, 2.0, 3.0]], 0.5, 2 / 3),
], ids=["one-outlier", "mean-over-tensors", "equal-is-not-above", "m-below-one"])
def test_outlier_ratio_by_hand(scores, m, expected):
    assert outlier_ratio([torch.tensor(s) for s in scores], m) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("ratios, sizes, target, lam, expected", [
    # x = (r - 0.01) / 0.02 * 0.2 = [0, 0.2, 0.1]; mean(x) = 0.1; s = 0.5 + 0.1 - x
    ([0.01, 0.03, 0.02], [1, 1, 1], 0.5, 0.1, [0.6, 0.4, 0.5]),
    # the reference's percentages give the same: the min-max scaling drops the unit
    ([1.0, 3.0, 2.0], [5, 5, 5], 0.5, 0.1, [0.6, 0.4, 0.5]),
    # weighted by size: mean(x) = (2 * 0 + 0.2 + 0.1) / 4 = 0.075; s = 0.575 - x
    ([0.01, 0.03, 0.02], [2, 1, 1], 0.5, 0.1, [0.575, 0.375, 0.475]),
    # the paper's LLaMA setting at 70%: x = [0, 0.16, 0.04, 0.12], mean 0.08, s = 0.78 - x
    ([0.02, 0.06, 0.03, 0.05], [1, 1, 1, 1], 0.7, 0.08, [0.78, 0.62, 0.74, 0.66]),
    ([0.2, 0.2], [1, 3], 0.7, 0.08, [0.7, 0.7]),  # no spread of ratios: uniform
    ([0.1, 0.3], [1, 1], 0.7, 0.0, [0.7, 0.7]),  # lambda 0: uniform
    ([0.4], [10], 0.3, 0.08, [0.3]),  # one block
    # 0.9 + 0.12 - [0, .16, .16, .16] = [1.02, 0.86, ...]: the first clipped to 1, the others
    # shifted by c with 1 + 3 (0.86 + c) = 3.6, c = 1/150
    ([0.0, 1.0, 1.0, 1.0], [1, 1, 1, 1], 0.9, 0.08, [1.0, 0.86 + 1 / 150, 0.86 + 1 / 150, 0.86 + 1 / 150]),
    # 0.1 + 0.04 - [0.16, 0, 0, 0] = [-0.02, 0.14, ...]: clipped to 0, 3 (0.14 + c) = 0.4
    ([1.0, 0.0, 0.0, 0.0], [1, 1, 1, 1], 0.1, 0.08, [0.0, 0.4 / 3, 0.4 / 3, 0.4 / 3]),
], ids=["equal-sizes", "percent", "weighted", "llama-70", "equal-ratios", "lambda-0", "one-block",
        "clipped-at-1", "clipped-at-0"])
def test_block_sparsities_by_hand(ratios, sizes, target, lam, expected):
    assert owl_sparsities(ratios, sizes, target, lam) == pytest.approx(expected, abs=1e-12)


def _reference(ratios: list[float], target: float, lam: float) -> list[float]:
    """luuyin/OWL's lib/prune_all.py (``prune_wanda_outlier``), equal blocks, rewritten: densities
    scaled into [0, 2 lambda], shifted to mean 1 - target; sparsity = 1 - density."""
    lo, hi = min(ratios), max(ratios)
    scaled = [(r - lo) * (1 / (hi - lo) * lam * 2) for r in ratios]
    mean = sum(scaled) / len(scaled)
    return [1 - (d - mean + (1 - target)) for d in scaled]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", [0.5, 0.7])
def test_equal_blocks_give_the_references_sparsities(seed, target):
    ratios = torch.rand(30, generator=torch.Generator().manual_seed(seed)).mul(0.05).tolist()
    assert owl_sparsities(ratios, [7] * 30, target, 0.08) == pytest.approx(_reference(ratios, target, 0.08), abs=1e-12)


CASES = [(seed, target, lam) for seed in range(3) for target in (0.05, 0.5, 0.7, 0.9, 0.97)
         for lam in (0.02, 0.08, 0.3)]


@pytest.mark.parametrize("seed, target, lam", CASES, ids=[f"seed{s}-t{t}-l{lam}" for s, t, lam in CASES])
def test_weighted_mean_is_the_target_and_more_outliers_mean_less_sparsity(seed, target, lam):
    g = torch.Generator().manual_seed(seed)
    ratios = torch.rand(9, generator=g).tolist()
    sizes = torch.randint(1, 1000, (9,), generator=g).tolist()
    s = owl_sparsities(ratios, sizes, target, lam)
    assert sum(w * x for w, x in zip(sizes, s)) == pytest.approx(target * sum(sizes), rel=1e-12)
    assert all(0.0 <= x <= 1.0 for x in s)
    order = sorted(range(9), key=lambda i: ratios[i])
    assert all(s[a] >= s[b] for a, b in zip(order, order[1:]))  # sparsity falls as the ratio rises
    assert max(s) - min(s) <= 2 * lam + 1e-12
    if all(0 < x < 1 for x in s):  # unclipped: the full span
        assert max(s) - min(s) == pytest.approx(2 * lam, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# A pruner's allocation on a tiny model

M, LAM, TARGET = 1.5, 0.1, 0.5  # M = 1.5 gives TwoBlocks' blocks different ratios


def _pruner(kind: str, **kw):
    from swp.pruners.simple import MagnitudePruner
    from swp.pruners.sparsegpt import SparseGPTPruner
    from swp.pruners.swp import SWPPruner
    from swp.pruners.wanda import WandaPruner

    extra = {"sparsegpt": {"blocksize": 4}}.get(kind, {})
    cls = {"magnitude": MagnitudePruner, "swp": SWPPruner, "wanda": WandaPruner, "sparsegpt": SparseGPTPruner}[kind]
    model = TwoBlocks()
    pruner = cls(model, allocation="owl", owl_m=M, owl_lambda=LAM, **extra, **kw)
    if pruner.capabilities.tracks:
        pruner.observe()
    return model, pruner


def _brute_force_ratios(model, m: float) -> list[float]:
    """Each block's outlier ratio from the Linear inputs recorded during plain forwards."""
    inputs: dict = {}
    linears = [mod for mod in model.modules() if isinstance(mod, torch.nn.Linear)]
    handles = [mod.register_forward_hook(lambda mod, args, out: inputs.setdefault(mod, []).append(args[0]))
               for mod in linears]
    for batch in batches(n=3):
        forward(model, batch)
    for h in handles:
        h.remove()
    ratios = []
    for block in model.blocks:
        scores = []
        for mod in (x for x in block.modules() if isinstance(x, torch.nn.Linear)):
            x = torch.cat([t.reshape(-1, t.shape[-1]) for t in inputs[mod]])
            norm = x.double().pow(2).sum(0).sqrt()  # ||X_j||_2 over every calibration token
            scores.append((mod.weight.detach().double().abs() * norm).flatten())
        flat = torch.cat(scores)
        ratios.append(float((flat > m * flat.mean()).double().mean()))
    return ratios


KINDS = ["magnitude", "swp", "wanda", "sparsegpt"]


@pytest.mark.parametrize("kind", KINDS)
def test_outlier_ratios_are_measured_on_the_dense_model(kind):
    model, pruner = _pruner(kind)
    expected = _brute_force_ratios(TwoBlocks(), M)
    pruner.calibrate(model, batches(n=3), forward)
    assert [b for b, _ in pruner.owl.layers] == ["blocks.0", "blocks.1"]
    assert pruner.owl.ratios == pytest.approx(expected, abs=1e-12)
    assert expected[0] != expected[1]


@pytest.mark.parametrize("kind", KINDS)
def test_each_tensor_is_pruned_at_its_blocks_sparsity(kind):
    model, pruner = _pruner(kind)
    pruner.calibrate(model, batches(n=3), forward)
    keep, _ = pruner.masks(pruner.rate_for_sparsity(TARGET))
    ratios, blocks = pruner.owl.ratios, pruner.owl.sparsities
    assert blocks == pytest.approx(owl_sparsities(ratios, [128, 128], TARGET, LAM), abs=1e-15)
    assert (blocks[0] < blocks[1]) == (ratios[0] > ratios[1]) and blocks[0] != blocks[1]
    rows = pruner.capabilities.compare_rows  # Wanda: the same count in every row of a tensor
    for i, block in enumerate(blocks):
        for name in (n for n in keep if n.startswith(f"blocks.{i}.")):
            k = keep[name]
            per = k.shape[1] if rows else k.numel()
            assert int((~k).sum()) == round(block * per) * (k.numel() // per), name
    pruned = sum(int((~k).sum()) for k in keep.values())
    slack = sum(k.shape[0] if rows else 1 for k in keep.values()) / 2  # half a weight per row / tensor
    assert abs(pruned - TARGET * sum(k.numel() for k in keep.values())) <= slack


@pytest.mark.parametrize("kind", KINDS)
def test_owl_calibrates_and_is_refused_on_sharded_parameters(kind):
    from swp.distributed.strategy import DDP, FSDP

    _, pruner = _pruner(kind)
    caps = pruner.capabilities
    assert caps.calibrates and caps.unsharded == "calibration" and "owl_m" in caps.mask_options
    DDP().check_pruner(type(pruner).__name__, caps)
    with pytest.raises(ConfigError, match=r"^pruner \w+ \(calibration\) is not supported under distributed=fsdp"):
        FSDP().check_pruner(type(pruner).__name__, caps)


def test_masks_before_calibration_say_so():
    _, pruner = _pruner("magnitude")
    with pytest.raises(RuntimeError, match="OWL saw no calibration input"):
        pruner.masks(pruner.rate_for_sparsity(TARGET))


# ---------------------------------------------------------------------------------------------
# Refusals, in one line


def _random(**kw):
    from swp.pruners.simple import RandomPruner

    return RandomPruner(TwoBlocks(), **kw)


def _gmp(**kw):
    from swp.pruners.gmp import GMPPruner

    return GMPPruner(TwoBlocks(), final_sparsity=0.5, end_step=10, **kw)


def _magnitude(**kw):
    from swp.pruners.simple import MagnitudePruner

    return MagnitudePruner(TwoBlocks(), **kw)


@pytest.mark.parametrize("make, kw, message", [
    (_random, dict(allocation="owl"), r"pruner.allocation must be one of shared_rate, uniform \(pruner=random"),
    (_gmp, dict(allocation="owl"), r"pruner.allocation must be one of shared_rate, uniform \(pruner=gmp"),
    (_magnitude, dict(allocation="owl", nm="2:4"), "pruner.allocation=owl cannot be used with pruner.nm"),
    (_magnitude, dict(allocation="owl", owl_m=0.0), "pruner.owl_m must be a finite number > 0"),
    (_magnitude, dict(allocation="owl", owl_lambda=1.0), r"pruner.owl_lambda must be a finite number in \[0, 1\)"),
    (_magnitude, dict(allocation="owl", calibration_batches=0), "pruner.calibration_batches must be an integer >= 1"),
], ids=["random", "gmp", "nm", "m-zero", "lambda-one", "no-batches"])
def test_the_constructors_refuse(make, kw, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        make(**kw)


@pytest.mark.parametrize("overrides, message", [
    (["pruner=random", "pruner.allocation=owl"], "pruner.allocation must be one of"),
    (["pruner=gmp", "pruner.allocation=owl", "target_sparsity=0.5"], "pruner.allocation must be one of"),
    (["pruner=sparsegpt", "pruner.allocation=shared_rate"], "pruner.allocation must be one of"),
    (["pruner=magnitude_owl", "pruner.owl_m=0"], "pruner.owl_m must be"),
    (["pruner=wanda_owl", "pruner.owl_lambda=-0.1"], "pruner.owl_lambda must be"),
    (["pruner=swp_owl", "pruner.owl_lambda=1.0"], "pruner.owl_lambda must be"),
], ids=["random", "gmp", "sparsegpt-shared-rate", "m-zero", "lambda-negative", "lambda-one"])
def test_the_validator_refuses_before_anything_runs(overrides, message, tmp_path):
    from swp.validation import validate_config

    with pytest.raises(ConfigError, match=f"^{message}"):
        validate_config(compose_cfg(TINY + overrides, tmp_path))


def test_lambda_is_a_half_width():
    """The sparsities span 2 lambda: OWL's lambda 0.08 at 70% gives blocks between 62% and 78%."""
    s = owl_sparsities([0.0, 0.5, 1.0], [1, 1, 1], 0.7, 0.08)
    assert (min(s), max(s)) == pytest.approx((0.62, 0.78)) and math.isclose(sum(s) / 3, 0.7)
