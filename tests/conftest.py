"""Shared fixtures: network-free environment, and the real config composed with Hydra."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Never reach the network, never write caches outside a temp dir (set before any import of
# wandb / datasets / transformers reads them).
_CACHE = Path(tempfile.mkdtemp(prefix="swp-test-cache-"))
os.environ.update(
    WANDB_MODE="offline",
    WANDB_SILENT="true",
    WANDB_DIR=str(_CACHE / "wandb"),
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HOME=str(_CACHE / "hf"),
    HF_DATASETS_CACHE=str(_CACHE / "hf" / "datasets"),
    MPLBACKEND="Agg",
)

import torch  # noqa: E402

from swp.config import compose_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Tiny but real: the Shakespeare data, the GPT class, every phase; a few seconds on one core.
TINY = [
    "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
    "dataset.text.max_chars=200000", "dataset.batch_size=8", "dataset.eval_batches=4",
    "schedule.train_steps=60", "schedule.track_every=5", "schedule.finetune_steps=20",
    "schedule.warmup_steps=5", "schedule.finetune_warmup_steps=2", "schedule.eval_every=0",
    "threads=1", "progress=false", "dense_cache.enabled=false",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def compose_cfg(overrides: list[str], out_dir: Path):
    """The real conf/train.yaml with overrides, as Hydra composes it for `python train.py`."""
    return compose_run_config(overrides, out_dir, CONF)


@pytest.fixture
def tiny_cfg(tmp_path):
    """A factory: tiny_cfg(*overrides) -> composed config writing into a temp run folder."""

    def make(*overrides: str, out: str = "run"):
        return compose_cfg(TINY + list(overrides), tmp_path / out)

    return make
