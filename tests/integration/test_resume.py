"""Exact resume: a run stopped anywhere and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal

import pytest

from swp.cli import run
from swp.errors import RunError, RunInterrupted
from swp.tasks.char_lm import CharLMTask
from swp.testing.outcome import assert_same_outcome as _assert_same
from swp.testing.outcome import run_outcome as _outcome

# Checkpoints every 7 steps (not a divisor of 60 or 20, so interval and boundary ones differ),
# kept after success so the tests can look at them.
CK = ("checkpoint.every=7", "checkpoint.keep_after_success=true")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from swp.testing.tiny import TINY, compose_cfg

    out = tmp_path_factory.mktemp("ref") / "run"
    run(compose_cfg(TINY + list(CK), out))
    return _outcome(out)


def _on_call(monkeypatch, cls, name, n, action):
    """Runs `action` at the n-th call of cls.name (1-based), then the real method."""
    original, calls = getattr(cls, name), [0]

    def wrapped(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)


def _signal(sig):
    return lambda: os.kill(os.getpid(), sig)


def test_sigterm_in_training_resumes_exactly(tiny_cfg, tmp_path, monkeypatch, reference):
    _on_call(monkeypatch, CharLMTask, "train_batch", 23, _signal(signal.SIGTERM))
    with pytest.raises(RunInterrupted, match="SIGTERM at train step 23") as info:
        run(tiny_cfg(*CK))
    assert info.value.signum == signal.SIGTERM
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["000000021-0-train", "000000023-0-train"]  # interval, then the stop
    assert not (tmp_path / "run" / "results.json").exists()
    monkeypatch.undo()
    results = run(tiny_cfg(*CK))
    assert results["resumed_from"] == "000000023-0-train"
    _assert_same(_outcome(tmp_path / "run"), reference)


def test_crash_in_finetuning_resumes_exactly_from_the_interval_checkpoint(tiny_cfg, tmp_path, monkeypatch, reference):
    def crash():
        raise RuntimeError("simulated power cut")

    _on_call(monkeypatch, CharLMTask, "train_batch", 60 + 17, crash)  # fine-tuning step 17
    with pytest.raises(RuntimeError, match="power cut"):
        run(tiny_cfg(*CK))
    monkeypatch.undo()
    results = run(tiny_cfg(*CK))
    assert results["resumed_from"] == "000000074-3-finetune"  # fine-tuning step 14 (every 7)
    _assert_same(_outcome(tmp_path / "run"), reference)


def test_sigint_right_after_pruning_resumes_exactly(tiny_cfg, tmp_path, monkeypatch, reference):
    _on_call(monkeypatch, CharLMTask, "evaluate", 2, _signal(signal.SIGINT))  # the pruned evaluation
    with pytest.raises(RunInterrupted, match="SIGINT right after pruning"):
        run(tiny_cfg(*CK))
    monkeypatch.undo()
    results = run(tiny_cfg(*CK))
    assert results["resumed_from"] == "000000060-2-pruned"
    _assert_same(_outcome(tmp_path / "run"), reference)


def test_signal_handlers_are_restored_after_a_run(tiny_cfg):
    before = signal.getsignal(signal.SIGTERM)
    run(tiny_cfg("schedule.train_steps=10", "schedule.finetune_steps=0"))
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    "every, log_every, expected",
    [
        (10, 5, "train: loss is nan at step 34"),  # found at the next logged loss
        (3, 10, "weights of .* are not finite at train step 33"),  # found by the checkpoint's own check
    ],
)
def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(
    tiny_cfg, tmp_path, monkeypatch, every, log_every, expected
):
    original = CharLMTask.loss
    calls = [0]

    def poisoned(self, model, batch):  # NaN from step 32 on
        calls[0] += 1
        loss = original(self, model, batch)
        return loss * float("nan") if calls[0] >= 33 else loss

    monkeypatch.setattr(CharLMTask, "loss", poisoned)
    with pytest.raises(RunError, match=expected) as info:
        run(tiny_cfg(f"checkpoint.every={every}", f"schedule.log_every={log_every}", "schedule.grad_clip=0"))
    last = sorted((tmp_path / "run" / "checkpoints").iterdir())[-1]
    assert last.name == "000000030-0-train"  # the last one before the NaN
    assert str(info.value).endswith(f"last good checkpoint: {last}")
    assert not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("crash_at", [11, 60 + 11])  # right after the interval checkpoint at step 10 / 70
def test_resume_right_after_an_interval_checkpoint_keeps_every_metric_line(tiny_cfg, tmp_path, monkeypatch, crash_at):
    """checkpoint.every a multiple of log_every (the defaults: 500 and 10): the checkpoint is
    written after its step's log line, so that line survives a crash right after it."""
    ck = ("checkpoint.every=10", "schedule.log_every=10", "checkpoint.keep_after_success=true")
    run(tiny_cfg(*ck, out="reference"))

    def crash():
        raise RuntimeError("simulated power cut")

    _on_call(monkeypatch, CharLMTask, "train_batch", crash_at + 1, crash)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tiny_cfg(*ck))
    monkeypatch.undo()
    resumed = run(tiny_cfg(*ck))
    assert resumed["resumed_from"] == ("000000010-0-train" if crash_at < 60 else "000000070-3-finetune")
    _assert_same(_outcome(tmp_path / "run"), _outcome(tmp_path / "reference"))
    steps = [
        json.loads(ln).get("step")
        for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if '"train/loss"' in ln or '"finetune/loss"' in ln
    ]
    assert steps == list(range(9, 80, 10))  # every logged loss, once
