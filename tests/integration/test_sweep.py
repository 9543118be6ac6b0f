"""Sweeps as config: the paper's grid, a job failure that spares the others, launcher configs."""

from __future__ import annotations

import json
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from swp import cli as swp_cli
from swp.testing.tiny import CONF, TINY


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_yields_the_expected_submitit_parameters(tmp_path, monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{__import__('os').environ['PATH']}")  # submitit looks for srun
    cfg = _compose("experiment=paper_lm_sweep", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                   "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=90", "hydra.launcher.mem_gb=64",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.job.name=train")
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    launcher = SlurmLauncher(**params)
    launcher.config, launcher.hydra_context, launcher.task_function = cfg, None, None
    captured = {}
    monkeypatch.setattr(submitit.AutoExecutor, "map_array",
                        lambda self, fn, *args: captured.setdefault("executor", self) and [])
    launcher.launch([["pruner=swp", "target_sparsity=0.5"]], 0)
    slurm = captured["executor"]._executor
    expected = {"partition": "gpu", "gpus_per_node": 2, "time": 90, "mem": "64GB", "cpus_per_task": 8,
                "signal_delay_s": 120}
    assert slurm.parameters.items() >= expected.items()
    assert slurm.max_num_timeout == 3  # requeued after a time-out, resuming from the checkpoint
    script = slurm._make_submission_file_text("python -u job.py", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --time=90", "#SBATCH --mem=64GB",
                 "#SBATCH --signal=USR2@120"):
        assert line in script


def test_a_failing_job_does_not_stop_the_sweep(monkeypatch, capsys, tmp_path):
    sweep = tmp_path / "sweep"
    monkeypatch.setattr(sys, "argv", [
        "train.py", f"--config-path={CONF}", "experiment=paper_lm_sweep", "hydra/launcher=basic", *TINY,
        "schedule.train_steps=20", "schedule.finetune_steps=5", f"hydra.sweep.dir={sweep}",
        f"dense_cache.dir={tmp_path / 'cache'}", "dense_cache.enabled=true", "pruner=swp", "target_sparsity=1.5,0.3",
        "seed=1", "hydra.sweeper.control=false",
    ])
    with pytest.raises(SystemExit) as ended:  # every job runs; then the sweep exits 1 and names the failure
        swp_cli.hydra_app()()
    assert ended.value.code == 1
    failed, good = sweep / "0_swp_1.5_s1", sweep / "1_swp_0.3_s1"
    assert json.loads((failed / "error.json").read_text()) == {
        "type": "ConfigError", "error": "target_sparsity must be a finite number in [0, 1) or null; got 1.5"}
    assert not (failed / "results.json").exists()
    assert json.loads((good / "results.json").read_text())["target_sparsity"] == 0.3
    err = capsys.readouterr().err
    assert "error: target_sparsity must be a finite number in [0, 1) or null; got 1.5" in err
    assert "sweep: 1 job(s) failed: 0_swp_1.5_s1 (see their error.json)" in err


