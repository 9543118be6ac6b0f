"""Energy and carbon per phase with codecarbon offline: figures, honesty flags, no files."""

import json
import os

import pytest

from swp.cli import run
from swp.energy.meter import NullMeter


def test_real_run_reports_energy_per_phase_and_writes_no_file(tiny_cfg, tmp_path):
    cwd_before = set(os.listdir("."))
    results = run(tiny_cfg("pruner=swp", "energy=codecarbon", "energy.country_iso_code=FRA"))
    run_dir = tmp_path / "run"
    saved = json.loads((run_dir / "results.json").read_text())
    phases = saved["energy_phases"]
    assert set(phases) == {"train", "evaluate", "prune", "finetune"}
    assert saved["energy_kwh"] > 0 and saved["co2_kg"] > 0
    assert saved["energy_kwh"] == pytest.approx(sum(p["kwh"] for p in phases.values()))
    assert (
        saved["energy_kwh_train"] == phases["train"]["kwh"] and saved["co2_kg_finetune"] == phases["finetune"]["co2_kg"]
    )
    for p in phases.values():
        assert p["kwh"] == pytest.approx(p["cpu_kwh"] + p["ram_kwh"] + p["gpu_kwh"])
    # France's grid intensity from codecarbon's offline table, not a network lookup.
    from codecarbon.input import DataSource

    fra = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    assert saved["carbon_intensity_g_per_kwh"] == pytest.approx(fra, rel=1e-6) and saved["energy_country"] == "FRA"
    # Never an estimate presented as a measurement: the flag and the method agree.
    assert saved["energy_measured"] == ("estimate" not in saved["energy_method"])
    assert "RAM estimate" in saved["energy_method"]  # codecarbon has no RAM counter: always estimated
    # Flat figures reach the logger summary (W&B) and the sweep CSV columns.
    summary = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"summary"' in line]
    assert summary[-1]["summary"]["energy_kwh"] == results["energy_kwh"]
    assert sorted(os.listdir(run_dir)) == [
        ".lock",  # the run folder's lock file stays (removing it could let two runs in)
        "config.yaml",
        "fig1_trajectories.png",
        "fig2_patterns.png",
        "importance.safetensors",
        "masks.safetensors",
        "metrics.jsonl",
        "model.safetensors",
        "results.json",
        "trajectories.npz",
    ]
    assert set(os.listdir(".")) == cwd_before


def test_energy_none_adds_nothing(tiny_cfg):
    assert NullMeter(out_dir="x").results() == {}
    results = run(tiny_cfg("pruner=magnitude", "energy=none"))
    assert not any(k.startswith(("energy", "co2")) for k in results)


