"""The ordered stages of a run, shared by the run and the checkpoints that record them, and the
clock that times them."""

from __future__ import annotations

import contextlib
import time
from enum import IntEnum


class Stage(IntEnum):
    """A run's stages in order; a checkpoint names the stage it is in or has just finished."""

    TRAIN = 0  # inside dense training
    DENSE = 1  # dense training finished (and evaluated)
    PRUNED = 2  # masks made and applied (and evaluated)
    FINETUNE = 3  # inside masked fine-tuning
    FINETUNED = 4  # fine-tuning finished

    @property
    def label(self) -> str:
        """The name checkpoint folders and files use (``dense``, ``finetune``, ...)."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> "Stage":
        return cls[label.upper()]


class StageClock:
    """Seconds per stage (``stage_seconds`` in results.json) and the CPU seconds of the process in
    them (``stage_cpu_seconds``: every thread's), exclusive: a stage timed inside another (a
    checkpoint written during training) counts for itself only, so the stages add up to the time
    they cover.

    Args:
        seconds, cpu_seconds: the dicts to accumulate into (the run's checkpointed `Progress`
            holds them, so a resumed run keeps those of the stages it finished before).
    """

    def __init__(self, seconds: dict[str, float] | None = None, cpu_seconds: dict[str, float] | None = None):
        self.seconds = seconds if seconds is not None else {}
        self.cpu_seconds = cpu_seconds if cpu_seconds is not None else {}
        self._nested: list[list[float]] = []  # per open stage: [wall, cpu] seconds of the stages inside it

    @contextlib.contextmanager
    def time(self, stage: str):
        """Adds the seconds spent in the ``with`` block, less those of nested stages, to `stage`."""
        start, cpu_start = time.perf_counter(), time.process_time()
        self._nested.append([0.0, 0.0])
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            inner = self._nested.pop()
            self.seconds[stage] = self.seconds.get(stage, 0.0) + wall - inner[0]
            self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + cpu - inner[1]
            if self._nested:
                self._nested[-1][0] += wall
                self._nested[-1][1] += cpu
