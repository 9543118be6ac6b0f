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

from swp.testing.hf_tiny import LLAMA, build_model_folder, build_tokenizer, write_corpus  # noqa: E402
from swp.testing.tiny import TINY, compose_cfg  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_cfg(tmp_path):
    """A factory: tiny_cfg(*overrides) -> composed config writing into a temp run folder."""

    def make(*overrides: str, out: str = "run"):
        return compose_cfg(TINY + list(overrides), tmp_path / out)

    return make


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Text files, a locally trained tokenizer and a saved tiny Llama (built once per module)."""
    root = tmp_path_factory.mktemp("hf_assets")
    files = write_corpus(root / "text")
    tok = build_tokenizer(root / "tokenizer", files["train"])
    return {"files": files, "tokenizer": str(root / "tokenizer"),
            "llama": build_model_folder(root / "llama", LLAMA, tok)}
