"""A parallel sweep (``hydra/launcher=local_parallel``) stopped by SIGTERM to its parent only, as
`kill <pid>` sends it (the workers get nothing), or by Ctrl-C's SIGINT to every process: every
running job stops after its step with a checkpoint, the job not yet started does not start, the
parent exits with 128 + the signal and leaves no process behind, and the same command then
resumes the sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swp.testing.tiny import ROOT, TINY

pytestmark = pytest.mark.slow


def _sweep_command(folder: Path) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "-m", *TINY, "schedule.train_steps=240", "checkpoint.every=25",
            "pruner=magnitude", "target_sparsity=0.3,0.5,0.7", "hydra.sweeper.control=false", "energy=none",
            "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={folder}"]


def _step(job: Path) -> int:
    metrics = job / "metrics.jsonl"
    if not metrics.exists():
        return -1
    steps = [json.loads(line).get("step", 0) for line in metrics.read_text().splitlines() if line.strip()]
    return max(steps, default=-1)


def _running_in_group(pgid: int) -> list[str]:
    """The processes of the group that still run (exited ones awaiting their reaper do not)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(stat.parent.name)
    return found


@pytest.mark.parametrize("to,sig", [("parent", signal.SIGTERM), ("group", signal.SIGINT)])
def test_a_stopped_parallel_sweep_leaves_checkpoints_and_no_process_then_resumes(tmp_path, to, sig):
    folder = tmp_path / "sweep"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_sweep_command(folder), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and min(_step(folder / "0"), _step(folder / "1")) < 60:
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    if to == "parent":
        proc.send_signal(sig)  # the workers are not signalled
    else:
        os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C: every process of the group
    _, err = proc.communicate(timeout=180)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, err[-3000:]
    assert err.count(f"stopped: interrupted by {name}") == 2, err[-3000:]
    assert "not started: the sweep was asked to stop" in err and f"sweep stopped by {name}" in err
    for job in ("0", "1"):
        assert not (folder / job / "results.json").exists()
        assert any((folder / job / "checkpoints").iterdir())
    assert not (folder / "2" / "checkpoints").exists()
    assert not _running_in_group(proc.pid), "a worker outlived the sweep's parent"
    if to == "group":
        return  # resuming is the same after either signal (CI time)
    again = subprocess.run(_sweep_command(folder), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    results = {job: json.loads((folder / job / "results.json").read_text()) for job in ("0", "1", "2")}
    assert results["0"]["resumed_from"] and results["1"]["resumed_from"] and not results["2"]["resumed_from"]
    assert [r["target_sparsity"] for r in results.values()] == [0.3, 0.5, 0.7]
