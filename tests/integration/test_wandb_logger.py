"""W&B: what an offline run wrote is read back from its .wandb file and table JSON."""

import json
import logging

import numpy as np
import pytest

import swp.run
from swp.analysis.trajectories import Trajectories
from swp.cli import run
from swp.logging.wandb_records import find_run_files, read_run


def _table(run_dir, key):
    """The JSON W&B left for the table (or line series) logged under `key`."""
    (path,) = run_dir.glob(f"wandb/offline-run-*/files/media/table/{key}_*.table.json")
    return json.loads(path.read_text())


def test_tiny_run_logs_config_metrics_summary_and_trajectories(tiny_cfg, tmp_path):
    results = run(tiny_cfg(
        "logger=wandb", "logger.project=swp-test", "logger.name=tiny", "logger.tags=[a,b]",
        "logger.group=g1", "trajectories.per_tensor=8", "trajectories.show=4",
    ))
    out = tmp_path / "run"
    (path,) = find_run_files(out)  # the offline run lives in the run folder
    wb = read_run(path, wait_s=30)
    assert (wb.project, wb.name, wb.group, wb.tags, wb.job_type) == ("swp-test", "tiny", "g1", ["a", "b"], "train")
    assert wb.exit_code == 0
    # The Hydra choices and the pruning settings are top-level config fields.
    assert wb.config["pruner_choice"] == "swp" and wb.config["model_choice"] == "gpt_tiny"
    assert wb.config["dataset_choice"] == "shakespeare" and wb.config["schedule_choice"] == "paper"
    assert wb.config["prune_rate"] == 0.6 and wb.config["target_sparsity"] is None
    assert wb.config["schedule"]["train_steps"] == 60

    keys = {k for row in wb.history for k in row}
    for key in (
        "train/loss",
        "finetune/loss",
        "val/loss",
        "lr",
        "tokens_per_s",
        "phase",
        "prune/sparsity",
        "prune/sparsity_overall",
    ):
        assert key in keys, key
    for layer in results["layers"]:
        (sp,) = wb.series(f"prune/layer/{layer['name']}/sparsity")
        (th,) = wb.series(f"prune/layer/{layer['name']}/threshold")
        assert sp == (60, pytest.approx(layer["sparsity"])) and th == (60, pytest.approx(layer["threshold"]))
    assert [s for s, _ in wb.series("train/loss")] == [9, 19, 29, 39, 49, 59]
    assert [s for s, _ in wb.series("finetune/loss")] == [69, 79]
    assert wb.series("val/loss")[-1] == (80, pytest.approx(results["val_loss"]))
    assert {v for _, v in wb.series("phase")} == {"train", "finetune"}
    for key in ("val_loss", "dense_val_loss", "pruned_val_loss", "sparsity", "sparsity_overall", "prune_rate_used"):
        assert wb.summary[key] == pytest.approx(results[key]), key
    assert wb.summary["pruner"] == "swp"

    # Trajectories: one line series per category, the sampled-weights table, both figures.
    traj = Trajectories.load(out / "trajectories.npz")
    table = _table(out, "trajectories/sampled_weights")
    assert table["columns"][:3] == ["tensor", "index", "pruned"] and len(table["data"]) == 8 * 8
    assert [r[2] for r in table["data"]] == traj.pruned.tolist()
    assert [r[:2] for r in table["data"]] == [[t, int(i)] for t, i in zip(traj.tensor, traj.index)]
    rise = _table(out, "trajectories/rise_table")
    assert rise["columns"] == ["step", "lineKey", "lineVal"]
    assert len(rise["data"]) == 4 * len(traj.steps) and {r[0] for r in rise["data"]} == set(traj.steps.tolist())
    first_line = [r for r in rise["data"] if r[1] == rise["data"][0][1]]
    row = traj.labels(range(len(traj.values))).index(first_line[0][1])
    np.testing.assert_allclose([r[2] for r in first_line], traj.values[row], rtol=1e-6)
    for name in ("random", "kept_vs_pruned", "stable", "divergent"):
        assert _table(out, f"trajectories/{name}_table")["data"]
    assert any(f.startswith("media/images/trajectories/fig1") for f in wb.files)
    assert any(f.startswith("media/images/trajectories/fig2") for f in wb.files)


def test_wandb_is_closed_when_the_run_fails(tiny_cfg, tmp_path, monkeypatch):
    def boom(*_, **__):
        raise RuntimeError("training blew up")

    monkeypatch.setattr(swp.run.Run, "execute", boom)
    with pytest.raises(RuntimeError, match="blew up"):
        run(tiny_cfg("logger=wandb"))
    (path,) = find_run_files(tmp_path / "run")
    assert read_run(path, wait_s=30).exit_code == 1
    assert not (tmp_path / "run" / "results.json").exists()


def test_run_goes_on_when_wandb_cannot_start(tiny_cfg, tmp_path, monkeypatch, caplog):
    import wandb

    def no_network(**_):
        raise wandb.errors.CommError("init timed out")

    monkeypatch.setattr(wandb, "init", no_network)
    with caplog.at_level(logging.WARNING, logger="swp.logging.wandb_logger"):
        results = run(
            tiny_cfg(
                "logger=wandb", "schedule.train_steps=10", "schedule.finetune_steps=0", "trajectories.per_tensor=0"
            )
        )
    assert "W&B did not start (CommError: init timed out)" in caplog.text
    assert json.loads((tmp_path / "run" / "results.json").read_text())["val_loss"] == results["val_loss"]
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_size > 0 and not find_run_files(tmp_path / "run")


