"""Sweep summaries: CSV and curves from job folders, the W&B table, the real `-m` sweep."""

import csv
import json
import subprocess
import sys

import pytest

from swp.analysis.sweep_summary import curves, summarize_sweep
from swp.logging.wandb_logger import WandbLogger
from swp.logging.wandb_records import find_run_files, read_run
from swp.testing.tiny import ROOT, TINY


def _job(sweep, num, results=None, error=None, overrides=("x=1",)):
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results | {"layers": [{"name": "w"}]}))
    if error is not None:
        (folder / "error.json").write_text(json.dumps(error))


def _result(pruner, sparsity, loss, dense=2.0, metric="loss"):
    return {"pruner": pruner, "prune_rate": sparsity * 2, "sparsity": sparsity, f"dense_val_{metric}": dense,
            f"pruned_val_{metric}": loss + 1, f"val_{metric}": loss}


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "multirun" / "s1"
    s.mkdir(parents=True)
    (s / "multirun.yaml").write_text("{}")
    _job(s, 0, _result("swp", 0.6, 1.9))
    _job(s, 1, _result("magnitude", 0.6, 2.1))
    _job(s, 2, _result("swp", 0.2, 1.95), overrides=("pruner=swp", "prune_rate=0.4"))
    _job(s, 3, error={"type": "NonFiniteLossError", "error": "train: loss is nan at step 3"})
    _job(s, 10)  # killed: neither file
    _job(s, 4, _result("magnitude", 0.2, 1.99))
    return s


def test_summary_csv_matches_jobs_and_lists_failures(sweep):
    result = summarize_sweep(sweep)
    assert (result["jobs"], result["ok"], result["failed"]) == (6, 4, 2)
    rows = _read_csv(sweep / "sweep_results.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "10"]  # numeric job order
    for r in rows:
        if r["status"] == "ok":
            saved = json.loads((sweep / r["job"] / "results.json").read_text())
            assert {k: str(v) for k, v in saved.items() if k != "layers"} == {k: r[k] for k in saved if k != "layers"}
    assert rows[2]["overrides"] == "pruner=swp prune_rate=0.4" and "layers" not in rows[0]
    assert (rows[3]["status"], rows[3]["error_type"]) == ("failed", "NonFiniteLossError")
    assert rows[5]["status"] == "failed" and "no results.json" in rows[5]["error"]
    assert (sweep / "fig3_compression_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert not (sweep / "fig4_compression_mae.png").exists()


def test_curves_are_per_pruner_and_sorted_by_sparsity(sweep):
    from swp.analysis.sweep_summary import collect

    assert curves(collect(sweep), "loss") == {"swp": ([20.0, 60.0], [1.95, 1.9]), "magnitude": ([20.0, 60.0], [1.99, 2.1])}


def test_price_sweep_gets_the_mae_figure(tmp_path):
    _job(tmp_path, 0, _result("swp", 0.3, 120.0, dense=100.0, metric="mae") | {"val_loss": 0.5})
    _job(tmp_path, 1, _result("swp", 0.5, 180.0, dense=100.0, metric="mae") | {"val_loss": 0.6})
    assert summarize_sweep(tmp_path)["figure"].endswith("fig4_compression_mae.png")
    assert (tmp_path / "fig4_compression_mae.png").exists() and not (tmp_path / "fig3_compression_loss.png").exists()


def test_sweep_run_logs_table_and_curves_to_wandb(sweep):
    logger = WandbLogger(config={"sweep_dir": str(sweep)}, out_dir=str(sweep), project="swp-test", job_type="sweep_summary")
    summarize_sweep(sweep, logger)
    logger.finish(True)
    (path,) = find_run_files(sweep)
    wb = read_run(path, wait_s=30)
    assert wb.group == "multirun/s1" and wb.summary["failed"] == 2 and wb.summary["ok"] == 4
    (table_path,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/results_*.table.json")
    table = json.loads(table_path.read_text())
    rows = _read_csv(sweep / "sweep_results.csv")
    assert table["columns"] == list(rows[0])
    assert [[("" if v is None else str(v)) for v in r] for r in table["data"]] == [list(r.values()) for r in rows]
    (curve_path,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/compression_loss/final_table_*.table.json")
    points = {(r[1], r[0], r[2]) for r in json.loads(curve_path.read_text())["data"]}
    assert points == {("swp", 20.0, 1.95), ("swp", 60.0, 1.9), ("magnitude", 20.0, 1.99), ("magnitude", 60.0, 2.1)}
    assert any(f.startswith("media/images/sweep/fig3_compression_loss") for f in wb.files)


def test_plot_sweep_script_rebuilds_from_disk(sweep, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import plot_sweep
    finally:
        sys.path.pop(0)
    assert plot_sweep.main([str(sweep)]) == 0
    assert "4/6 jobs ok" in capsys.readouterr().out
    assert len(_read_csv(sweep / "sweep_results.csv")) == 6 and (sweep / "fig3_compression_loss.png").exists()
    assert plot_sweep.main([str(sweep / "0")]) == 2  # a job folder is not a sweep folder


@pytest.mark.slow
def test_real_multirun_writes_the_sweep_summary(tmp_path):
    """`python train.py -m ...`: three jobs, then sweep_results.csv and Fig. 3 in the sweep folder."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "-m", *TINY, "schedule.train_steps=30", "schedule.finetune_steps=10",
           "trajectories.per_tensor=4", "pruner=swp", "prune_rate=0.3,0.6,1.2", f"hydra.sweep.dir={sweep}"]
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
