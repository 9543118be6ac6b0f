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
    """Seconds per stage (``stage_seconds`` in results.json), exclusive: a stage timed inside
    another (a checkpoint written during training, an evaluation inside a phase) counts for
    itself only, so the stages add up to the time they cover.

    Args:
        seconds: the dict to accumulate into (the run's checkpointed `Progress` holds it, so a
            resumed run keeps the seconds of the stages it finished before).
    """

    def __init__(self, seconds: dict[str, float] | None = None):
        self.seconds = seconds if seconds is not None else {}
        self._nested: list[float] = []  # per open stage: seconds of the stages inside it

    @contextlib.contextmanager
    def time(self, stage: str):
        """Adds the seconds spent in the ``with`` block, less those of nested stages, to `stage`."""
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._nested.pop()
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner
            if self._nested:
                self._nested[-1] += elapsed
