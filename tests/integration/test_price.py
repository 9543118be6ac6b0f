"""The price experiment: renderer, split, vocabulary, Burberry mapping, and a real tiny run."""

from __future__ import annotations

import json

import pytest

from swp.cli import run
from swp.testing.tiny import compose_cfg

PRICE_TINY = [
    "dataset=diamonds",
    "model=price_vlm",
    "dataset.examples.max_rows=2000",
    "dataset.examples.image_size=16",
    "dataset.batch_size=32",
    "dataset.eval_batch_size=200",
    "model.width=32",
    "model.hidden=64",
    "schedule.train_steps=60",
    "schedule.track_every=5",
    "schedule.finetune_steps=20",
    "schedule.warmup_steps=5",
    "schedule.finetune_warmup_steps=2",
    "schedule.eval_every=0",
    "schedule.lr=1e-2",
    "schedule.finetune_lr=3e-3",
    "threads=1",
    "progress=false",
    "pruner=swp",
    "prune_rate=0.6",
]


def test_tiny_price_run_pins_mae_and_sparsity(tmp_path):
    results = run(compose_cfg(PRICE_TINY, tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in ("dense_val_mae", "pruned_val_mae", "val_mae", "baseline_val_mae", "val_loss"):
        assert saved[key] == pytest.approx(results[key])
    assert saved["model"] == "price_vlm" and saved["dataset"] == "diamonds" and saved["val_rows"] == 200
    assert results["baseline_val_mae"] == pytest.approx(PINNED["baseline_val_mae"], rel=1e-9)
    for key in ("dense_val_mae", "pruned_val_mae", "val_mae", "sparsity"):
        assert results[key] == pytest.approx(PINNED[key], rel=1e-4), key
    assert results["val_mae"] < 0.5 * results["baseline_val_mae"]  # already far better than the mean
    head = [layer["name"] for layer in results["layers"]]
    assert "head.weight" not in head and "image_proj.weight" in head  # the regression head stays dense
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("final/val_mae" in m for m in logged)


# From this deterministic run (threads=1); a change here means the data, model or pipeline changed.
PINNED = {
    "baseline_val_mae": 2977.3308500000003,
    "dense_val_mae": 1395.851435878176,
    "pruned_val_mae": 1374.6992277202548,
    "val_mae": 1297.1036852954346,
    "sparsity": 0.20400390625,
}
