"""StageClock: exclusive seconds per stage, with a fake clock so the sums are exact."""

from __future__ import annotations

import pytest

from swp import stages
from swp.stages import StageClock


@pytest.fixture
def fake_time(monkeypatch):
    now = [0.0, 0.0]  # wall, CPU: two threads busy, so CPU runs at twice the wall clock
    monkeypatch.setattr(stages.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(stages.time, "process_time", lambda: now[1])

    def advance(seconds: float) -> None:
        now[0] += seconds
        now[1] += 2 * seconds
    return advance


def test_nested_stages_count_for_themselves_only(fake_time):
    clock = StageClock()
    with clock.time("dense_training"):
        fake_time(3.0)
        with clock.time("checkpoints"):
            fake_time(1.0)
            with clock.time("energy_meter"):
                fake_time(0.25)
        fake_time(2.0)
    assert clock.seconds == {"dense_training": 5.0, "checkpoints": 1.0, "energy_meter": 0.25}
    assert sum(clock.seconds.values()) == 6.25  # the outer block's wall time
    assert clock.cpu_seconds == {"dense_training": 10.0, "checkpoints": 2.0, "energy_meter": 0.5}


def test_repeated_stages_add_up_and_the_dict_is_shared(fake_time):
    held = {"eval_dense": 1.0}  # e.g. restored from a checkpoint
    clock = StageClock(held)
    for _ in range(3):
        with clock.time("checkpoints"):
            fake_time(0.5)
    assert held == {"eval_dense": 1.0, "checkpoints": 1.5}


def test_a_failing_stage_still_counts(fake_time):
    clock = StageClock()
    with pytest.raises(RuntimeError):
        with clock.time("pruning"):
            fake_time(2.0)
            raise RuntimeError("boom")
    with clock.time("export"):
        fake_time(1.0)
    assert clock.seconds == {"pruning": 2.0, "export": 1.0}
