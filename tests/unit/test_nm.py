"""N:M sparsity: the pure mask rule on hand-made tensors, and the invariant after real runs."""


import pytest
import torch

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


def test_nm_groups_run_along_inputs_of_conv1d_weights():
    """GPT-2 stores Conv1D weights as (in, out): its 2:4 groups must run down axis 0."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from swp.pruners.simple import MagnitudePruner

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=16, vocab_size=32))
    pruner = MagnitudePruner(model, nm=[2, 4])
    keep, _ = pruner.masks(0.0)
    attn = "transformer.h.0.attn.c_attn.weight"
    assert pruner.input_axis[attn] == 0 and keep[attn].shape == (16, 48)
    for name, k in keep.items():
        groups = k.movedim(pruner.input_axis[name], -1).reshape(-1, 4)
        assert torch.all(groups.sum(dim=1) == 2), name
