"""Every row of the README's bad-input table: a one-line error naming what to fix, a non-zero
exit, and no results.json. Runs the real entrypoint (`train.main`, in-process)."""

from __future__ import annotations

import errno
import json
import sys

import pytest
import torch

from swp import cli as swp_cli
from swp.infra import checkpoint as checkpoint_module
from swp.logging.base import Logger
from swp.testing.tiny import CONF, TINY

# Shorter than the tiny run: these tests are about the errors, not the numbers.
SHORT = ["schedule.train_steps=30", "schedule.finetune_steps=10", "dataset.eval_batches=2"]


def cli(monkeypatch, capsys, out, *overrides, hydra_dir=None):
    """Runs `python train.py <tiny> <overrides>`; returns (exit status, stderr)."""
    hydra_dir = hydra_dir or out.parent / "hydra"
    argv = ["train.py", f"--config-path={CONF}", *TINY, *SHORT, f"output_dir={out}", f"hydra.run.dir={hydra_dir}", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        swp_cli.hydra_app()()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


CUDA = torch.cuda.is_available()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prune_rate=abc"], "prune_rate must be a number"),
        (["prune_rate=-1"], "prune_rate must be a finite number >= 0"),
        (["target_sparsity=1.5"], "target_sparsity must be in"),
        (["device=tpu"], "device must be auto, cpu or cuda"),
        pytest.param(["device=cuda"], "CUDA is not available", marks=pytest.mark.skipif(CUDA, reason="has CUDA")),
        (["precision=fp8"], "precision must be fp32 or bf16"),
        (["dataset.text.max_chars=100"], "block_size 32 is longer than the validation text"),
        (["dataset.text.genres=[nope]"], "no plays found"),
        (["dataset=text_files"], "required setting(s) not given: dataset.text.paths"),
        (["dataset=text_files", "dataset.text.paths=[/nonexistent.txt]"], "data file not found"),
        (["pruner.include=[nomatch]"], "include pattern 'nomatch' matches no prunable parameter"),
        (["pruner.scope=bad"], "pruner.scope must be"),
        (["schedule.train_steps=-1"], "schedule.train_steps must be >= 0"),
        (["checkpoint.every=-1"], "checkpoint.every must be >= 0"),
        (["checkpoint.keep=0"], "checkpoint.keep must be >= 1"),
    ],
)
def test_config_errors(monkeypatch, capsys, tmp_path, overrides, message):
    code, err = cli(monkeypatch, capsys, tmp_path / "run", *overrides)
    assert code == 2 and message in _one_line_error(err)
    assert not (tmp_path / "run" / "results.json").exists()


def test_unwritable_output_folder(monkeypatch, capsys, tmp_path):
    (tmp_path / "a_file").write_text("x")  # a folder inside a file cannot be made, even by root
    code, err = cli(monkeypatch, capsys, tmp_path / "a_file" / "run", hydra_dir=tmp_path / "hydra")
    assert code == 2 and "output folder" in _one_line_error(err) and "is not writable" in err


@pytest.fixture
def interrupted(monkeypatch, capsys, tmp_path):
    """A run folder whose run stopped in fine-tuning (a crash), with two checkpoints left."""
    from swp.tasks.char_lm import CharLMTask

    original, calls = CharLMTask.train_batch, [0]

    def crash_in_finetuning(self, *args):
        calls[0] += 1
        if calls[0] == 35:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(CharLMTask, "train_batch", crash_in_finetuning)
    with pytest.raises(KeyboardInterrupt):
        cli(monkeypatch, capsys, tmp_path / "run", "checkpoint.every=12")
    monkeypatch.setattr(CharLMTask, "train_batch", original)
    capsys.readouterr()
    folder = tmp_path / "run"
    assert json.loads((folder / "error.json").read_text())["type"] == "KeyboardInterrupt"
    return folder


def test_resume_with_a_different_model_shape(monkeypatch, capsys, interrupted):
    code, err = cli(monkeypatch, capsys, interrupted, "model.n_embd=64")
    line = _one_line_error(err)
    assert code == 2 and "different config (model.n_embd: 32 -> 64)" in line and "000000030-2-pruned" in line


def test_resume_with_another_pruner(monkeypatch, capsys, interrupted):
    code, err = cli(monkeypatch, capsys, interrupted, "pruner=magnitude")
    assert code == 2 and "pruner._target_: swp.methods.swp.SWPPruner -> swp.methods.simple.MagnitudePruner" in _one_line_error(err)


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "incomplete"])
def test_damaged_checkpoint_is_reported_never_loaded(monkeypatch, capsys, interrupted, damage):
    newest = sorted((interrupted / "checkpoints").iterdir())[-1]
    if damage == "corrupt":
        data = bytearray((newest / "state.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (newest / "state.pt").write_bytes(bytes(data))
    elif damage == "truncated":
        with open(newest / "model.safetensors", "r+b") as f:
            f.truncate(100)
    else:
        (newest / "manifest.json").unlink()
    code, err = cli(monkeypatch, capsys, interrupted)
    line = _one_line_error(err)
    assert code == 2 and f"checkpoint {newest} is {damage}" in line and "delete it" in line
    assert not (interrupted / "results.json").exists()
    if damage != "corrupt":
        return
    # Following the advice resumes from the one before it, and the run completes.
    import shutil

    shutil.rmtree(newest)
    code, err = cli(monkeypatch, capsys, interrupted)
    assert code == 0 and (interrupted / "results.json").exists() and not (interrupted / "error.json").exists()


def test_full_disk_while_checkpointing(monkeypatch, capsys, tmp_path):
    calls = [0]
    real = checkpoint_module._fsync_file

    def disk_fills(path):
        calls[0] += 1
        if calls[0] > 5:  # the first checkpoint (4 files + manifest) fits, the next does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(checkpoint_module, "_fsync_file", disk_fills)
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "checkpoint.every=12")
    line = _one_line_error(err)
    assert code == 1 and "could not write checkpoint" in line and "No space left on device" in line
    folder = tmp_path / "run"
    assert not (folder / "results.json").exists() and (folder / "error.json").exists()
    # The crash in the middle of the second write left the first checkpoint whole and loadable.
    left = [p.name for p in (folder / "checkpoints").iterdir()]
    assert left == ["000000012-0-train"]
    assert checkpoint_module.read_checkpoint(folder / "checkpoints" / left[0]).step == 12
    monkeypatch.setattr(checkpoint_module, "_fsync_file", real)
    code, err = cli(monkeypatch, capsys, folder, "checkpoint.every=12")
    assert code == 0 and json.loads((folder / "results.json").read_text())["resumed_from"] == "000000012-0-train"


def test_finished_folder_with_another_config(monkeypatch, capsys, tmp_path):
    assert cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0")[0] == 0
    before = (tmp_path / "run" / "results.json").read_text()
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0", "seed=1")
    assert code == 2 and "holds a finished run that was made with a different config (seed: 1337 -> 1)" in _one_line_error(err)
    assert (tmp_path / "run" / "results.json").read_text() == before and not (tmp_path / "run" / "error.json").exists()
    # The same command again is answered from the finished run, without training.
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0")
    assert code == 0 and (tmp_path / "run" / "results.json").read_text() == before


def test_resume_from_a_folder_without_checkpoints(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = cli(monkeypatch, capsys, tmp_path / "run", f"resume={tmp_path / 'empty'}", "output_dir=null")
    assert code == 2 and "holds no checkpoint" in _one_line_error(err)


class ExplodingLogger(Logger):
    """A logging backend that fails the way W&B does when the network goes (or never starts)."""

    def __init__(self, config=None, out_dir=None, fail_at_start=False):
        if fail_at_start:
            raise ConnectionError("wandb.init timed out")

    def log(self, metrics, step):
        if step >= 15:
            raise ConnectionError("network is unreachable")


@pytest.mark.parametrize("fail_at_start", [False, True])
def test_logger_failure_never_stops_training(monkeypatch, capsys, tmp_path, fail_at_start):
    code, err = cli(monkeypatch, capsys, tmp_path / "run", f"+logger.fail_at_start={fail_at_start}",
                    f"logger._target_={__name__}.ExplodingLogger")
    assert code == 0 and "warning: logger" in err
    assert ("could not start" in err) if fail_at_start else ("failed in log()" in err)
    steps = [json.loads(ln).get("step") for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 39 in steps and (tmp_path / "run" / "results.json").exists()


def test_sigterm_through_the_entrypoint_exits_143_and_the_rerun_resumes(monkeypatch, capsys, tmp_path):
    import os
    import signal

    from swp.tasks.char_lm import CharLMTask

    original, calls = CharLMTask.train_batch, [0]

    def preempted(self, *args):
        calls[0] += 1
        if calls[0] == 12:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args)

    monkeypatch.setattr(CharLMTask, "train_batch", preempted)
    folder = tmp_path / "run"
    code, err = cli(monkeypatch, capsys, folder)
    assert code == 128 + signal.SIGTERM
    assert f"stopped: interrupted by SIGTERM at train step 12; checkpoint {folder / 'checkpoints' / '000000012-0-train'}" in err
    assert json.loads((folder / "error.json").read_text())["type"] == "RunInterrupted"
    assert not (folder / "results.json").exists()
    monkeypatch.setattr(CharLMTask, "train_batch", original)
    code, err = cli(monkeypatch, capsys, folder)
    assert code == 0 and not (folder / "error.json").exists()
    assert json.loads((folder / "results.json").read_text())["resumed_from"] == "000000012-0-train"
    assert not (folder / "checkpoints").exists()  # removed after success (checkpoint.keep_after_success=false)
