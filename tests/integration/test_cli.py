"""The real CLI in a subprocess: a run, a bad input, and an unknown group option."""

import json
import os
import subprocess
import sys

import pytest

from swp.testing.tiny import ROOT, TINY

pytestmark = pytest.mark.slow


def _cli(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_run_prints_summary_and_writes_results(tmp_path):
    p = _cli(*TINY, "pruner=swp", "prune_rate=0.6", f"hydra.run.dir={tmp_path}/run")
    assert p.returncode == 0, p.stderr
    assert "pruner=swp" in p.stdout and "sparsity=" in p.stdout and "val_loss: dense" in p.stdout
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["pruner"] == "swp" and r["model"] == "gpt_tiny" and r["schedule"] == "paper"
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    p = _cli(*TINY, "prune_rate=-1", f"hydra.run.dir={tmp_path}/run")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: prune_rate must be a finite number in [0, 100] (above 100 std no weight of a real tensor survives; "
        "use target_sparsity for an exact fraction); got -1"
    ]
    assert not (tmp_path / "run" / "results.json").exists()


def test_cli_unknown_option_lists_valid_ones(tmp_path):
    p = _cli("pruner=obs", f"hydra.run.dir={tmp_path}/run")
    assert p.returncode != 0
    for option in ("gmp", "magnitude", "none", "random", "sparsegpt", "swp", "wanda"):
        assert option in p.stderr
