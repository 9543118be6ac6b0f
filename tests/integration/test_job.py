"""The job object (`swp.launch.Job`): what a run holds open is closed however the run ends, and a
failure while closing never hides the failure that ended the run."""

from __future__ import annotations

import pytest

from swp.cli import run
from swp.errors import RunError
from swp.logging.base import JsonlLogger
from swp.run import Run


def _fail_after_training(monkeypatch):
    def boom(self):
        raise RunError("boom in the run")

    monkeypatch.setattr(Run, "execute", boom)


def test_a_failing_close_never_hides_the_runs_own_failure(tiny_cfg, monkeypatch, capsys):
    _fail_after_training(monkeypatch)

    def finish(self, ok=True):
        raise OSError("no space left while closing metrics.jsonl")

    monkeypatch.setattr(JsonlLogger, "finish", finish)
    with pytest.raises(RunError, match="boom in the run"):
        run(tiny_cfg())
    err = capsys.readouterr().err
    assert "warning: closing the logger failed too: no space left" in err
    assert err.count("warning:") == 1


def test_after_a_failure_the_folder_is_unlocked_and_the_logger_closed(tiny_cfg, monkeypatch):
    finished = []
    original = JsonlLogger.finish
    monkeypatch.setattr(JsonlLogger, "finish", lambda self, ok=True: (finished.append(ok), original(self, ok)))
    with monkeypatch.context() as m:
        _fail_after_training(m)
        with pytest.raises(RunError):
            run(tiny_cfg("schedule.train_steps=4", "schedule.finetune_steps=0"))
    assert finished == [False]  # closed once, told the run failed
    # The lock went with the job: the same folder runs to the end at once.
    results = run(tiny_cfg("schedule.train_steps=4", "schedule.finetune_steps=0"))
    assert results["sparsity"] > 0 and finished == [False, True]


def test_a_close_failure_of_a_finished_run_is_an_error(tiny_cfg, monkeypatch):
    """With nothing else wrong, a metrics file that cannot be closed is the run's failure."""
    def finish(self, ok=True):
        raise OSError("disk gone")

    monkeypatch.setattr(JsonlLogger, "finish", finish)
    with pytest.raises(RunError, match="could not close the logger in .*: disk gone"):
        run(tiny_cfg("schedule.train_steps=4", "schedule.finetune_steps=0"))
