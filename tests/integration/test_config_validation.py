"""Validation at the edge through the real CLI, in a subprocess: exit 2, one line, no traceback,
nothing trained or written. (The validator itself, every key of every option, is tested in
tests/unit/test_config_validation.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from swp.testing.tiny import ROOT

pytestmark = pytest.mark.slow

# A small sample through the real CLI: exit 2, one line, no traceback, nothing trained.
CLI_SAMPLE = ["seed=-1", "pruner.include=qkv", "schedule.lr=nan", "dataset.val_fraction=1.5"]


@pytest.mark.parametrize("override", CLI_SAMPLE)
def test_cli_refuses_with_exit_2_and_trains_nothing(override, tmp_path):
    out = tmp_path / "run"
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            override,
            f"output_dir={out}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "energy=none",
            "dense_cache.enabled=false",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    key = override.split("=")[0]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith(f"error: {key} must be"), (
        proc.stderr
    )
    assert not (out / "results.json").exists() and not (out / "metrics.jsonl").exists()
    assert not (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
    assert not (out / "config.yaml").exists()  # refused before the run folder was opened
    if (out / "error.json").exists():  # the failure record a sweep summary lists
        assert json.loads((out / "error.json").read_text())["type"] == "ConfigError"


