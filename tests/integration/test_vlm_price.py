"""The Phi-3-vision wrapper's code path, on a tiny random LLaVA built from a config (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from swp.cli import run
from swp.testing.tiny import CONF, compose_cfg

VLM_TINY = [
    "dataset=diamonds", "model=tiny_vlm", "dataset.examples.max_rows=200", "dataset.batch_size=4",
    "dataset.eval_batch_size=20", "schedule.train_steps=6", "schedule.track_every=2", "schedule.finetune_steps=2",
    "schedule.warmup_steps=1", "schedule.finetune_warmup_steps=1", "schedule.eval_every=0", "schedule.lr=3e-3",
    "threads=1", "progress=false", "pruner=swp", "prune_rate=0.6",
]


def test_tiny_vlm_trains_and_prunes_through_run(tmp_path):
    results = run(compose_cfg(VLM_TINY, tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["model"] == "tiny_vlm" and {"dense_val_mae", "pruned_val_mae", "val_mae", "baseline_val_mae"} <= set(
        saved
    )
    names = [layer["name"] for layer in results["layers"]]
    # Default: only the language model's Linear layers; vision tower, projector and head stay dense.
    assert names and all(n.startswith("backbone.language_model.layers.") for n in names)
    assert len(names) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert results["sparsity"] == pytest.approx(PINNED["sparsity"], rel=1e-4)
    for key in ("dense_val_mae", "val_mae"):
        assert results[key] == pytest.approx(PINNED[key], rel=1e-4), key


# From this deterministic run (threads=1).
PINNED = {"sparsity": 0.286962890625, "dense_val_mae": 1520.6424871696868, "val_mae": 1512.1078976841868}


def test_only_the_phi3_config_trusts_remote_code():
    trusting = sorted(p.name for p in (CONF / "model").glob("*.yaml") if "trust_remote_code: true" in p.read_text())
    assert trusting == ["phi3_vision.yaml"]
    cfg = compose_cfg(["experiment=paper_vlm"], Path("/tmp/unused"))
    assert cfg.model.trust_remote_code is True and cfg.model.dtype == "bfloat16" and cfg.model.gradient_checkpointing
    assert cfg.model.keep_dense == ["vision_embed_tokens"] and cfg.precision == "bf16"
    assert cfg.dataset.examples._target_ == "swp.data.burberry.burberry_examples"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", ["tiny_vlm", "price_vlm"])
def test_price_models_on_gpu_in_bf16(tmp_path, model):
    overrides = [o for o in VLM_TINY if not o.startswith("model=")] + [
        f"model={model}",
        "device=cuda",
        "precision=bf16",
    ]
    results = run(compose_cfg(overrides, tmp_path / "run"))
    assert results["device"].startswith("cuda") and np.isfinite(results["val_mae"]) and results["sparsity"] > 0
