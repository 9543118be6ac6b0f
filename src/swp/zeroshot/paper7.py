"""zeroshot=paper7: the seven zero-shot tasks of the Wanda and SparseGPT papers."""

from __future__ import annotations

import os
import typing
from typing import Annotated, Literal, Sequence

from swp.config_types import Check, Why, check_arguments
from swp.zeroshot.harness import BatchSize, Fewshot, Limit, LMEvalTasks

PaperTask = Literal["boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
PAPER7: tuple[str, ...] = typing.get_args(PaperTask)
PaperTasks = Annotated[Sequence[Annotated[PaperTask, Why("other tasks: zeroshot=local")]],
                       Check(len, "a non-empty list of the suite's tasks")]
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class Paper7(LMEvalTasks):
    """BoolQ, RTE, HellaSwag, WinoGrande, ARC-easy, ARC-challenge and OpenBookQA through lm-eval's
    own task definitions. Their data come from the Hugging Face Hub (downloaded once into the
    datasets cache): a run that cannot reach them stops before training, in one line.

    Args:
        tasks: the suite, or a subset of it.
        batch_size, limit, num_fewshot, after_pruning: see `LMEvalTasks`.
    """

    option = "zeroshot=paper7"

    def __init__(self, tasks: PaperTasks = PAPER7, batch_size: BatchSize = "auto", limit: Limit = None,
                 num_fewshot: Fewshot = 0, after_pruning: bool = False):
        check_arguments(Paper7, locals(), at="zeroshot")
        super().__init__(tasks, include_path=None, batch_size=batch_size, limit=limit, num_fewshot=num_fewshot,
                         after_pruning=after_pruning, include_defaults=True)

    def offline_hint(self) -> str:
        offline = [flag for flag in OFFLINE_FLAGS if os.environ.get(flag, "").lower() in ("1", "true", "yes", "on")]
        if offline:
            return (f" ({' and '.join(offline)} set, and the data are not in the datasets cache: run once with Hub "
                    "access to fill it, or use zeroshot=local)")
        return " (these tasks download their data from the Hugging Face Hub: is it reachable?)"
