"""The ordered stages of a run, shared by the run and the checkpoints that record them."""

from __future__ import annotations

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
