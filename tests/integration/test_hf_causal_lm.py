"""Real Hugging Face models (tiny, random, built offline) through the real run(cfg)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from swp.cli import run
from swp.testing.hf_tiny import GPT2, HF_TINY
from swp.testing.hf_tiny import data_files_override as _data_files
from swp.testing.tiny import compose_cfg

LLAMA_PRUNED = {f"model.layers.{i}.{m}.weight" for i in range(2) for m in
                ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
GPT2_PRUNED = {f"transformer.h.{i}.{m}.weight" for i in range(2) for m in
               ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}


def test_tiny_llama_from_folder_swp_prune_recover_export(tmp_path, assets):
    overrides = [*HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}"]
    results = run(compose_cfg(overrides, tmp_path / "run"))
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    assert saved["model"] == "hf_causal_lm" and saved["dataset"] == "hf_text"
    # Tracking: a point every 2 steps of 20; then exactly half the decoder Linears pruned.
    assert results["tracking_points"] == 10
    assert {layer["name"] for layer in results["layers"]} == LLAMA_PRUNED
    assert results["sparsity"] == pytest.approx(0.5, abs=1e-3)
    # Masks held through recovery: the weights' own zeros equal the masks' after fine-tuning.
    assert results["sparsity"] == pytest.approx(results["mask_sparsity"], abs=1e-9)
    masks = load_file(str(out / "masks.safetensors"))
    assert set(masks) == LLAMA_PRUNED
    weights = load_file(str(out / "model.safetensors"))
    for name, keep in masks.items():
        assert torch.all(weights[name][~keep] == 0), name
    # Embeddings, the untied head and the norms stay dense.
    for name in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):
        assert int((weights[name] == 0).sum()) == 0, name
    # Perplexity by the published protocol, finite and pinned; its context recorded.
    assert saved["eval_split"] == "test" and saved["eval_seq_len"] == 32 and saved["eval_windows"] == 8
    assert saved["eval_tokens"] == 8 * 31
    for key in ("initial_val_ppl", "dense_val_ppl", "pruned_val_ppl", "val_ppl"):
        assert 1.0 < saved[key] < 1e4
    assert saved["initial_val_ppl"] > saved["dense_val_ppl"]  # before vs after the tracked fine-tune
    assert saved["val_ppl"] == pytest.approx(PINNED["llama_val_ppl"], rel=1e-3)
    # Memory: the fp32 clone is one copy of the pruned weights (auto follows the fp32 weights).
    assert saved["tracked_state_bytes"] == 4 * saved["prunable_params"]
    assert saved["model_bytes"] == 4 * saved["total_params"]
    # Export: reloads with the same sparsity and the same perplexity.
    assert saved["export_sparsity"] == pytest.approx(saved["sparsity"], abs=1e-12)
    assert saved["export_val_ppl"] == pytest.approx(saved["val_ppl"], rel=1e-6)
    assert (out / "hf_export" / "config.json").is_file() and (out / "hf_export" / "tokenizer.json").is_file()


def test_tiny_gpt2_from_config_conv1d_tied_head_cpu_state(tmp_path, assets):
    """GPT-2 keeps its projections in transformers' Conv1D (weights stored in x out) and ties
    its head to the token embedding; the SWP state here is kept on the CPU."""
    config = ", ".join(f"{k}: {v}" for k, v in GPT2.items())
    results = run(compose_cfg([
        *HF_TINY, _data_files(assets), "model.name_or_path=null", f"+model.config={{{config}}}",
        f"dataset.tokenizer={assets['tokenizer']}", "pruner.state_device=cpu",
        "target_sparsity=0.3",
    ], tmp_path / "run"))
    out = tmp_path / "run"
    assert {layer["name"] for layer in results["layers"]} == GPT2_PRUNED
    assert results["sparsity"] == pytest.approx(0.3, abs=1e-3)
    assert results["tracked_state_bytes"] == 4 * results["prunable_params"]
    weights = load_file(str(out / "model.safetensors"))
    tied = [n for n in ("transformer.wte.weight", "lm_head.weight") if n in weights]
    assert len(tied) == 1  # stored once
    for name in (*tied, "transformer.wpe.weight", "transformer.ln_f.weight"):
        assert int((weights[name] == 0).sum()) == 0, name
    for name in GPT2_PRUNED:  # Conv1D biases stay dense
        assert int((weights[name.replace(".weight", ".bias")] == 0).sum()) == 0, name
    assert results["val_ppl"] == pytest.approx(PINNED["gpt2_val_ppl"], rel=1e-3)
    assert results["export_sparsity"] == pytest.approx(results["sparsity"], abs=1e-12)
    assert results["export_val_ppl"] == pytest.approx(results["val_ppl"], rel=1e-6)


def test_magnitude_one_shot_on_the_same_path(tmp_path, assets):
    results = run(compose_cfg([
        *HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "pruner=magnitude",
        "schedule.finetune_steps=0", "export=none", "target_sparsity=0.6",
    ], tmp_path / "run"))
    assert results["sparsity"] == pytest.approx(0.6, abs=1e-3) and results["tracked_state_bytes"] == 0
    assert results["val_ppl"] == results["pruned_val_ppl"]  # one-shot: evaluated right after pruning
    assert "export_val_ppl" not in results and not (tmp_path / "run" / "hf_export").exists()


def test_bf16_weights_warn_keep_a_float32_state_and_export_exactly(tmp_path, assets):
    """dtype=bfloat16 (pure 16-bit weights): SWP warns that small updates are lost, its state
    stays float32 (a 16-bit state loses late points), masks and the reloaded export stay bf16."""
    with pytest.warns(UserWarning, match="model.dtype=float32"):
        results = run(compose_cfg([
            *HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "model.dtype=bfloat16",
            "schedule.train_steps=10", "schedule.finetune_steps=4",
        ], tmp_path / "run"))
    assert results["tracked_state_bytes"] == 4 * results["prunable_params"]
    assert results["model_bytes"] == 2 * results["total_params"]
    assert results["sparsity"] == pytest.approx(0.5, abs=1e-3) == results["mask_sparsity"]
    assert results["export_val_ppl"] == pytest.approx(results["val_ppl"], rel=1e-6)


PINNED = {"llama_val_ppl": 126.4049, "gpt2_val_ppl": 118.7196}


@pytest.mark.slow
def test_cli_runs_the_llm_experiment_on_local_files(tmp_path, assets):
    """The README's command shape through the real CLI (quoting of data_files included)."""
    import os
    import subprocess
    import sys

    from swp.testing.tiny import ROOT

    args = [*HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "export=none",
            "schedule.train_steps=4", "schedule.finetune_steps=2", f"hydra.run.dir={tmp_path}/run"]
    p = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert p.returncode == 0, p.stderr
    assert "val_ppl: dense" in p.stdout
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["model"] == "hf_causal_lm" and saved["tracking_points"] == 2 and saved["eval_windows"] == 8


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_cuda_bf16_weights_with_the_state_kept_on_cpu(tmp_path, assets):
    results = run(compose_cfg([
        *HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "device=cuda", "precision=bf16",
        "model.dtype=auto", "pruner.state_device=cpu",
    ], tmp_path / "run"))
    assert results["model_bytes"] == 2 * results["total_params"]  # dtype=auto is bf16 on a GPU
    assert results["tracked_state_bytes"] == 4 * results["prunable_params"]
    assert results["sparsity"] == pytest.approx(0.5, abs=1e-3) == results["mask_sparsity"]
    assert results["export_val_ppl"] == pytest.approx(results["val_ppl"], rel=1e-3)


