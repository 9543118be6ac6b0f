"""Faults end in one line: a full disk at every file a run writes (each artifact, each stage's
checkpoint, a metric line, config.yaml) gives exit 1, one `error:` line naming the file and no
traceback, with error.json written, or, when the disk refuses that too, a line that says so;
cleanup after a failure never raises over the first error; a signal during calibration stops
the run at the next batch with the usual `stopped:` line."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from swp.infra.run_files import BEFORE_CONFIG, RUN_FILES
from swp.logging import base as logging_base
from swp.stages import Stage
from swp.testing.tiny import MICRO, error_line, options, run_cli

FULL = "No space left on device"
# MICRO with the trajectory sample on, so Figs. 1-2 and trajectories.npz are written too.
BASE = MICRO + ["trajectories.per_tensor=4", "target_sparsity=0.5"]
# Every plain file a run writes itself (RUN_FILES, without the folders and the files that
# exist before a run starts), and every stage's checkpoint.
ARTIFACTS = [n for n in RUN_FILES if "*" not in n and "." in n and not any(Path(n).match(p) for p in BEFORE_CONFIG)]
TARGETS = ARTIFACTS + [f"checkpoint {s.label}" for s in Stage]


def _writes(target: str, path: str) -> bool:
    """Whether a file being fsynced at `path` belongs to `target` (its temporary, or a file of
    the checkpoint folder being assembled)."""
    name = Path(path).name
    if target.startswith("checkpoint "):
        return f"-{target.split()[1]}.tmp-" in path
    stem, suffix = Path(target).stem, Path(target).suffix
    return name.startswith(f".{stem}.") and ".tmp" in name and name.endswith(suffix)


@pytest.fixture
def full_disk(monkeypatch):
    """full_disk(target, error_json=False): writes of `target` (and of error.json) fail as on a
    full disk, the way each writer meets it: at fsync, at a metric line's append, at OmegaConf.save."""

    def fill(target: str, error_json: bool = False) -> None:
        real_fsync = os.fsync

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            if _writes(target, path) or (error_json and ".error." in Path(path).name):
                raise OSError(errno.ENOSPC, FULL)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        if target == "metrics.jsonl":
            real, calls = logging_base.append_line, [0]

            def append(fd, data):
                calls[0] += 1
                if calls[0] > 3:
                    raise OSError(errno.ENOSPC, FULL)
                real(fd, data)

            monkeypatch.setattr(logging_base, "append_line", append)
        if target == "config.yaml":
            def save(*args, **kwargs):
                raise OSError(errno.ENOSPC, FULL, "config.yaml")

            monkeypatch.setattr(OmegaConf, "save", save)

    return fill


@pytest.mark.parametrize("error_json", [True, False], ids=["error.json written", "error.json refused too"])
@pytest.mark.parametrize("target", TARGETS)
def test_a_full_disk_at_every_write_ends_in_one_line(monkeypatch, capsys, tmp_path, full_disk, target, error_json):
    folder = tmp_path / "run"
    full_disk(target, error_json=not error_json)
    code, err = run_cli(monkeypatch, capsys, folder, base=BASE)
    line = error_line(err)
    assert code == 1 and FULL in line, line
    assert not (folder / "results.json").exists()
    if error_json:
        record = json.loads((folder / "error.json").read_text())
        assert FULL in record["error"] and "could not be written" not in line
    else:
        assert line.endswith(f"(error.json could not be written: {FULL})") and not (folder / "error.json").exists()


class _Boom(Exception):
    pass


def _fail_cleanup(monkeypatch, part: str) -> None:
    """Makes one piece of the cleanup after a failure raise as well."""
    if part == "metrics.jsonl close":
        def finish(self, ok=True):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(logging_base.JsonlLogger, "finish", finish)
    elif part == "codecarbon stop":
        from codecarbon import OfflineEmissionsTracker

        def stop(self):
            raise _Boom("codecarbon could not stop")

        monkeypatch.setattr(OfflineEmissionsTracker, "stop", stop)


@pytest.mark.parametrize("part", ["metrics.jsonl close", "codecarbon stop"])
def test_cleanup_after_a_failure_never_raises_over_it(monkeypatch, capsys, tmp_path, full_disk, part):
    """The first error (a metric line on a full disk) is the one line; the cleanup's own failure
    is at most a warning."""
    full_disk("metrics.jsonl")
    _fail_cleanup(monkeypatch, part)
    code, err = run_cli(monkeypatch, capsys, tmp_path / "run", "energy=codecarbon", base=BASE)
    line = error_line(err)
    assert code == 1 and "could not append to" in line and FULL in line
    assert json.loads((tmp_path / "run" / "error.json").read_text())["type"] == "RunError"


# Every pruner option that calibrates (its capabilities say so), and SWP made activation-aware.
def _calibrating() -> dict[str, list[str]]:
    from swp.launch import build
    from swp.models.gpt import GPT
    from swp.testing.tiny import compose_cfg

    found = {}
    for name in options("pruner"):
        node = compose_cfg([f"pruner={name}", "target_sparsity=0.5"], "/tmp/unused").pruner
        pruner = build("pruner", node)(model=GPT(vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8))
        if pruner.capabilities.calibrates:
            found[name] = [f"pruner={name}"]
    return found | {"swp-activation_aware": ["pruner=swp", "pruner.activation_aware=true"]}


CALIBRATING = _calibrating()


@pytest.mark.parametrize("pruner", list(CALIBRATING))
def test_a_signal_during_calibration_stops_at_the_next_batch(monkeypatch, capsys, tmp_path, pruner):
    from swp.run import Run
    from swp.tasks.char_lm import CharLMTask

    real_calibrate, real_loss, after = Run._calibrate, CharLMTask.loss, []

    def calibrate(self, calibration):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives as calibration starts
        after.append(0)
        return real_calibrate(self, calibration)

    def loss(self, model, batch):
        if after:
            after[0] += 1  # forwards run after the signal
        return real_loss(self, model, batch)

    monkeypatch.setattr(Run, "_calibrate", calibrate)
    monkeypatch.setattr(CharLMTask, "loss", loss)
    folder = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, folder, *CALIBRATING[pruner], "pruner.calibration_batches=8", base=BASE)
    line = error_line(err, "stopped: ")
    assert code == 128 + signal.SIGTERM and "SIGTERM while drawing calibration batches" in line
    assert f"checkpoint {folder / 'checkpoints'}" in line and after == [0]
    monkeypatch.undo()
    code, err = run_cli(monkeypatch, capsys, folder, *CALIBRATING[pruner], "pruner.calibration_batches=8", base=BASE)
    assert code == 0 and json.loads((folder / "results.json").read_text())["resumed_from"].endswith("-dense")


@pytest.mark.parametrize("pruner", ["sparsegpt", "wanda"])
def test_a_signal_between_blocks_stops_before_the_next_forward(monkeypatch, capsys, tmp_path, pruner):
    """SparseGPT and sequential Wanda run the calibration batches once per block: a signal in
    the first block's forwards stops the run before the next batch."""
    from swp.tasks.char_lm import CharLMTask

    real_loss, calls = CharLMTask.loss, []

    def loss(self, model, batch):
        if not model.training:  # calibration (and evaluation) forwards
            calls.append(1)
        if len(calls) == 3 and not model.training:  # the dense evaluation is the first, then calibration
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(self, model, batch)

    monkeypatch.setattr(CharLMTask, "loss", loss)
    code, err = run_cli(monkeypatch, capsys, tmp_path / "run", f"pruner={pruner}", base=BASE)
    line = error_line(err, "stopped: ")
    assert code == 128 + signal.SIGTERM and "SIGTERM during calibration" in line and len(calls) == 3
