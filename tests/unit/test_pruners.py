"""Pruners on a real GPT: selection, SWP tracking, baselines at equal counts, mask enforcement."""

import pytest
import torch
from torch import nn

from swp.errors import ConfigError
from swp.models.gpt import GPT
from swp.pruners.select import prunable_parameters
from swp.pruners.simple import MagnitudePruner, RandomPruner
from swp.pruners.swp import SWPPruner
from swp.pruning.masks import MaskDriftError, MaskSet


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    return GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def test_default_selection_is_block_linears_not_head_or_embeddings(gpt):
    names = set(prunable_parameters(gpt))
    assert names == {f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.qkv", "attn.proj", "fc", "fc_proj")}


def test_include_exclude_patterns(gpt):
    assert set(prunable_parameters(gpt, include=[r"\.fc\."])) == {"blocks.0.fc.weight", "blocks.1.fc.weight"}
    assert "blocks.0.fc.weight" not in prunable_parameters(gpt, exclude=[r"blocks\.0\."])
    with pytest.raises(ConfigError, match="matches no prunable parameter"):
        prunable_parameters(gpt, include=["no_such_layer"])


def test_swp_importance_is_weighted_history(gpt):
    pruner = SWPPruner(gpt, include=[r"blocks\.0\.fc\.weight"])
    w = pruner.params["blocks.0.fc.weight"]
    seen = []
    for t in range(1, 4):
        with torch.no_grad():
            w.mul_(-1.5)
        seen.append(w.detach().abs().clone())
        pruner.observe()
    expected = (1 * seen[0] + 2 * seen[1] + 3 * seen[2]) / 6
    torch.testing.assert_close(pruner.importance()["blocks.0.fc.weight"], expected)


def test_swp_window_keeps_last_points(gpt):
    pruner = SWPPruner(gpt, include=[r"blocks\.0\.fc\.weight"], window=1)  # last 2 points
    w = pruner.params["blocks.0.fc.weight"]
    seen = []
    for _ in range(4):
        with torch.no_grad():
            w.add_(1.0)
        seen.append(w.detach().abs().clone())
        pruner.observe()
    torch.testing.assert_close(pruner.importance()["blocks.0.fc.weight"], (3 * seen[2] + 4 * seen[3]) / 7)
    assert pruner.state_bytes() == 2 * w.numel() * 4


def test_swp_without_tracking_points_fails_clearly(gpt):
    with pytest.raises(RuntimeError, match="no tracking point"):
        SWPPruner(gpt).masks(0.5)


def test_swp_compare_current_uses_todays_weights(gpt):
    pruner = SWPPruner(gpt, compare="current")
    pruner.observe()
    with torch.no_grad():
        for p in pruner.params.values():
            p.mul_(3.0)
    scores, _ = pruner.scores()
    for n, p in pruner.params.items():
        torch.testing.assert_close(scores[n], p.detach().abs())


def test_random_prunes_magnitudes_counts_but_other_weights(gpt):
    mag_keep, _ = MagnitudePruner(gpt).masks(0.8)
    rnd_keep, _ = RandomPruner(gpt, seed=3).masks(0.8)
    for n in mag_keep:
        assert int((~mag_keep[n]).sum()) == int((~rnd_keep[n]).sum())
    assert any(not torch.equal(mag_keep[n], rnd_keep[n]) for n in mag_keep)


def test_masks_survive_adamw_steps_and_state(gpt):
    pruner = MagnitudePruner(gpt)
    opt = torch.optim.AdamW(gpt.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.randint(0, 11, (4, 8))
    for _ in range(3):  # build momentum for every weight first
        opt.zero_grad()
        gpt(x, x)[1].backward()
        opt.step()
    keep, _ = pruner.masks(1.0)
    masks = MaskSet(pruner.params, keep)
    masks.apply(opt)
    for _ in range(5):
        opt.zero_grad()
        gpt(x, x)[1].backward()
        masks.mask_grads()
        opt.step()
        masks.enforce()
    masks.check("test")
    assert 0.3 < masks.sparsity() < 0.9


def test_mask_check_detects_drift(gpt):
    pruner = MagnitudePruner(gpt)
    keep, _ = pruner.masks(1.0)
    masks = MaskSet(pruner.params, keep)
    masks.apply()
    name = masks.names[0]
    with torch.no_grad():
        pruner.params[name][~keep[name]] = 1.0
    with pytest.raises(MaskDriftError, match=name):
        masks.check("after test")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_time_apply_zeroes_like_the_per_step_path_without_float_copies(dtype):
    """The apply after one-shot pruning multiplies by the bool masks (no 4-byte copy of every
    mask); the per-step path makes the copies once; both leave the same weights, pruned ones +0.0."""
    torch.manual_seed(0)
    weights = {"a": torch.randn(6, 5, dtype=dtype), "b": -torch.rand(4, 3, dtype=dtype)}
    keep = {n: torch.rand(w.shape) > 0.5 for n, w in weights.items()}
    once = {n: nn.Parameter(w.clone()) for n, w in weights.items()}
    stepped = {n: nn.Parameter(w.clone()) for n, w in weights.items()}
    first = MaskSet(once, keep)
    first.apply()
    assert first._mult is None  # nothing kept beside the bool masks
    second = MaskSet(stepped, keep)
    second.enforce()
    assert [m.dtype for m in second._mult] == [dtype, dtype]
    for n in weights:
        assert torch.equal(once[n], stepped[n]) and torch.equal(once[n], weights[n] * keep[n])
        assert not torch.signbit(once[n][~keep[n]]).any()  # -0.0 made +0.0 on both paths
    first.apply()  # a second apply is still exact; mask_grads then makes the copies
    once["a"].grad = torch.ones_like(once["a"])
    first.mask_grads()
    assert first._mult is not None and torch.equal(once["a"].grad, keep["a"].to(dtype))
