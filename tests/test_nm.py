"""N:M sparsity: the pure mask rule on hand-made tensors, and the invariant after real runs."""

import json

import pytest
import torch

from swp.cli import run
from swp.errors import ConfigError
from swp.pruning.nm import check_nm_shapes, nm_keep_mask, nm_violations, parse_nm


def test_two_of_four_keeps_the_two_highest_in_each_group():
    score = torch.tensor([[1.0, 4.0, 2.0, 3.0, 0.5, 0.1, 0.9, 0.2],
                          [7.0, 6.0, 5.0, 8.0, 0.0, 0.0, 3.0, 0.0]])
    expected = torch.tensor([[0, 1, 0, 1, 1, 0, 1, 0],
                             [1, 0, 0, 1, 1, 0, 1, 0]], dtype=torch.bool)
    assert torch.equal(nm_keep_mask(score, 2, 4), expected)  # tie of zeros: earlier kept


def test_one_of_three_and_ties_are_broken_by_position():
    score = torch.tensor([[2.0, 2.0, 2.0, 0.0, 1.0, 1.0]])
    assert nm_keep_mask(score, 1, 3).tolist() == [[True, False, False, False, True, False]]


def test_invariant_holds_on_every_group_of_a_random_tensor():
    score = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))
    keep = nm_keep_mask(score, 2, 4)
    assert keep.view(-1, 4).sum(1).eq(2).all()
    assert nm_violations(score * keep, 2, 4) == 0 and nm_violations(score, 2, 4) == 16 * 16
    # The kept ones are the two largest of their group.
    groups, kept = score.view(-1, 4), keep.view(-1, 4)
    assert (groups[kept].view(-1, 2).min(1).values >= groups[~kept].view(-1, 2).max(1).values).all()


@pytest.mark.parametrize(
    "value,expected", [(None, None), (True, (2, 4)), ("2:4", (2, 4)), ([1, 4], (1, 4)), ((4, 8), (4, 8))]
)
def test_parse_nm_forms(value, expected):
    assert parse_nm(value) == expected


@pytest.mark.parametrize("value", ["2-4", [4, 2], [0, 4], "a:b", 3])
def test_parse_nm_rejects_bad_input(value):
    with pytest.raises(ConfigError):
        parse_nm(value)


def test_shapes_must_divide_by_m():
    check_nm_shapes({"a": (3, 8)}, 4)
    with pytest.raises(ConfigError, match="multiple of M=4"):
        check_nm_shapes({"a": (3, 8), "b": (8, 6)}, 4)


@pytest.mark.parametrize("pruner", ["swp", "magnitude"])
def test_run_with_2_4_keeps_2_of_4_in_every_group_after_finetuning(tiny_cfg, tmp_path, pruner):
    from safetensors.torch import load_file

    results = run(tiny_cfg(f"pruner={pruner}", "pruner.nm=[2,4]", "prune_rate=5.0", "energy=none"))
    assert results["nm"] == "2:4" and results["sparsity"] == 0.5 and results["mask_sparsity"] == 0.5
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    masks = load_file(str(tmp_path / "run" / "masks.safetensors"))
    assert len(masks) == 8  # 2 layers x (qkv, proj, fc, fc_proj)
    for name, keep in masks.items():
        assert keep.view(-1, 4).sum(1).eq(2).all(), name  # the mask: exactly 2 per group
        assert nm_violations(weights[name], 2, 4) == 0, name  # the fine-tuned weights obey it
        assert torch.equal(weights[name] != 0, keep), name
        assert not torch.signbit(weights[name][~keep]).any(), name  # pruned weights are +0.0
    # prune_rate=5.0 would prune almost everything by Eq. 2: it is ignored, as documented.
    assert json.loads((tmp_path / "run" / "results.json").read_text())["prune_rate"] == 5.0


def test_nm_with_target_sparsity_is_a_config_error_before_training(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="cannot be combined"):
        run(tiny_cfg("pruner=swp", "pruner.nm=[2,4]", "target_sparsity=0.6", "energy=none"))
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained


def test_nm_on_a_width_that_does_not_divide_is_a_config_error(tiny_cfg):
    with pytest.raises(ConfigError, match="multiple of M=3"):
        run(tiny_cfg("pruner=magnitude", "pruner.nm=[1,3]", "energy=none"))


def test_nm_groups_run_along_inputs_of_conv1d_weights():
    """GPT-2 stores Conv1D weights as (in, out): its 2:4 groups must run down axis 0."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from swp.methods.simple import MagnitudePruner

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=16, vocab_size=32))
    pruner = MagnitudePruner(model, nm=[2, 4])
    keep, _ = pruner.masks(0.0)
    attn = "transformer.h.0.attn.c_attn.weight"
    assert pruner.input_axis[attn] == 0 and keep[attn].shape == (16, 48)
    for name, k in keep.items():
        groups = k.movedim(pruner.input_axis[name], -1).reshape(-1, 4)
        assert torch.all(groups.sum(dim=1) == 2), name
