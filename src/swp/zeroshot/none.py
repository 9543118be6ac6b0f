"""zeroshot=none: no zero-shot evaluation (the default)."""

from __future__ import annotations


class NoZeroShot:
    """Scores nothing; the run skips its zero-shot stages (``tasks`` is empty)."""

    tasks: tuple[str, ...] = ()
    after_pruning = False

    def prepare(self, tokenizer, world_size: int) -> None:
        """Nothing to check."""

    def check_model(self, model) -> None:
        """Any model is fine."""

    def __call__(self, model, tokenizer, autocast) -> dict[str, float]:
        return {}

    def info(self) -> dict:
        return {}
