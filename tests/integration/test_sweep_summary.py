"""Sweep summaries: per-job CSV, the per-point aggregate over seeds, Fig. 3/4 with bands and the
two reference lines, the headline metric per task, the W&B summary run, the paired comparison
of scripts/sweep_table.py, and a real `-m` sweep with seeds and the automatic control."""

import json
import subprocess
import sys

import pytest

from swp.testing.tiny import ROOT, TINY
from tests.unit.test_sweep_summary import _lines, _read_csv


@pytest.mark.slow
def test_real_multirun_writes_the_sweep_summary(tmp_path):
    """`python train.py -m ...`: three jobs, then sweep_results.csv and Fig. 3 in the sweep folder
    (the automatic control turned off: hydra.sweeper.control=false)."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        *TINY,
        "schedule.train_steps=30",
        "schedule.finetune_steps=10",
        "trajectories.per_tensor=4",
        "pruner=swp",
        "prune_rate=0.3,0.6,1.2",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweeper.control=false",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sweep summary: 3/3 jobs ok" in proc.stdout
    rows = _read_csv(sweep / "sweep_results.csv")
    assert [r["prune_rate"] for r in rows] == ["0.3", "0.6", "1.2"]
    for r in rows:
        saved = json.loads((sweep / r["job"] / "results.json").read_text())
        assert float(r["val_loss"]) == saved["val_loss"] and float(r["sparsity"]) == saved["sparsity"]
        assert (sweep / r["job"] / "fig1_trajectories.png").exists()
    assert float(rows[0]["sparsity"]) < float(rows[1]["sparsity"]) < float(rows[2]["sparsity"])
    assert (sweep / "fig3_compression_loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_real_seeded_multirun_gets_the_control_the_aggregate_and_bands(tmp_path):
    """`python train.py -m pruner=swp,magnitude target_sparsity=0.3,0.6 seed=1,2`: 8 pruning jobs and
    the control once per seed (2, not 4: ``none`` ignores the sparsity), the aggregate CSV with
    n = 2 per point, and Fig. 3 whose data hold 2 curves, 2 before-fine-tune curves, the dense and
    the control line."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        *TINY,
        "schedule.train_steps=20",
        "schedule.finetune_steps=5",
        "trajectories.per_tensor=0",
        "energy=none",
        "dense_cache.enabled=true",
        f"dense_cache.dir={tmp_path / 'cache'}",
        "pruner=swp,magnitude",
        "target_sparsity=0.3,0.6",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sweep summary: 10/10 jobs ok" in proc.stdout
    rows = _read_csv(sweep / "sweep_results.csv")
    controls = [r for r in rows if r["pruner"] == "none"]
    assert sorted(r["seed"] for r in controls) == ["1", "2"] and all(r["target_sparsity"] == "" for r in controls)
    assert all(r["dense_cache"] == "hit" for r in controls)  # the control reuses its seed's dense phase
    agg = {(r["curve"], r["point"]): r for r in _read_csv(sweep / "sweep_aggregate.csv")}
    assert set(agg) == {("swp", "0.3"), ("swp", "0.6"), ("magnitude", "0.3"), ("magnitude", "0.6"), ("none", "")}
    assert all(r["n"] == "2" and r["seeds"] == "1 2" and r["val_loss_std"] != "" for r in agg.values())
    assert (sweep / "fig3_compression_loss.png").read_bytes()[:4] == b"\x89PNG"
    lines = _lines(sweep)
    assert len(lines) == 6 and sorted(ln["kind"] for ln in lines) == sorted(
        ["curve", "curve", "before_finetune", "before_finetune", "dense", "control"]
    )
    assert all(lo < hi for ln in lines if ln["kind"] == "curve" for lo, hi in zip(ln["lo"], ln["hi"]))
