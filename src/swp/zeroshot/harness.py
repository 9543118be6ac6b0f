"""lm-evaluation-harness on the model in memory: the shared part of zeroshot=local and paper7.

The model is wrapped as it is (``HFLM(pretrained=<model>, tokenizer=<its tokenizer>)``), so what
is scored is exactly the pruned (and fine-tuned) weights of the run, on the run's device and
under its autocast, with no save and reload. lm-eval seeds Python, NumPy and torch; those
states are put back afterwards, so a run with zero-shot scoring trains exactly as one without.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import Annotated, Literal, Sequence

from swp.config_types import Check, Count, Count0, check_arguments
from swp.errors import ConfigError
from swp.infra.rng import capture_rng, restore_rng

# The settings every zero-shot option shares, annotated once (the validator reads them).
TaskNames = Annotated[Sequence[Annotated[str, Check(str.strip, "a task name")]],
                      Check(len, "a non-empty list of task names")]
BatchSize = Count | Literal["auto"]
Limit = Count | None
Fewshot = Count0

# The metrics of a multiple-choice task that results.json keeps (with their standard errors).
METRICS = ("acc", "acc_norm")


class LMEvalTasks:
    """A list of lm-eval tasks scored on the run's model after the final evaluation (and, with
    ``after_pruning``, right after pruning, before recovery).

    Args:
        tasks: lm-eval task (or group) names.
        include_path: a folder of task YAMLs of your own (None: lm-eval's built-in tasks only).
        batch_size: requests per forward pass (``auto``: lm-eval searches the largest that fits).
        limit: score only the first documents of each task (quick runs); None: all of them.
        num_fewshot: examples in each prompt (0: zero-shot, as the pruning papers report).
        after_pruning: also score the model right after pruning (``pruned_zeroshot/...``).
        include_defaults: index lm-eval's built-in tasks too (seconds: off for local folders).
    """

    option = "zeroshot"  # how refusals name the option (the subclasses name theirs)

    def __init__(self, tasks: TaskNames, include_path: str | None = None, batch_size: BatchSize = 8,
                 limit: Limit = None, num_fewshot: Fewshot = 0, after_pruning: bool = False,
                 include_defaults: bool = True):
        check_arguments(LMEvalTasks, locals(), at="zeroshot")  # the subclasses' annotations, for direct use
        self.tasks = tuple(tasks)
        self.include_path, self.include_defaults = include_path, include_defaults
        self.batch_size, self.limit, self.num_fewshot = batch_size, limit, num_fewshot
        self.after_pruning = after_pruning
        self._manager = None

    # ---- before anything is trained --------------------------------------------------------
    def prepare(self, tokenizer, world_size: int) -> None:
        """The refusals that need no model, then every task's data loaded once (from files, the
        Hub or the datasets cache), so a task that cannot be reached stops the run here.

        Raises:
            ConfigError: no tokenizer (the task is not a Hugging Face one), several processes,
                an unknown task name, or data that cannot be loaded.
        """
        if tokenizer is None:
            raise ConfigError(f"zeroshot: {self.option} scores a Hugging Face causal LM through its tokenizer; this "
                              "run's model has none (the character GPT and the price models): use zeroshot=none, or "
                              "a Hugging Face model (model=hf_causal_lm | smollm2) with a token dataset")
        if world_size > 1:
            raise ConfigError(f"zeroshot: {self.option} runs in one process; under torchrun use zeroshot=none and "
                              "score the exported folder with lm_eval afterwards (docs/evaluation.md)")
        self._load_tasks()

    def check_model(self, model) -> None:
        """Refuses a model lm-eval's HFLM cannot wrap (anything but a transformers PreTrainedModel)."""
        from transformers import PreTrainedModel

        if not isinstance(model, PreTrainedModel):
            raise ConfigError(f"zeroshot: {self.option} needs a Hugging Face model (a transformers PreTrainedModel), "
                              f"got {type(model).__name__}: use zeroshot=none")

    def _load_tasks(self) -> None:
        names = self.manager().all_tasks + self.manager().all_groups + self.manager().all_tags
        unknown = [t for t in self.tasks if t not in set(names)]
        if unknown:
            where = f"in {self.include_path} or lm-eval's tasks" if self.include_path else "among lm-eval's tasks"
            raise ConfigError(f"zeroshot.tasks: {', '.join(unknown)} not found {where}")
        from lm_eval.tasks import get_task_dict

        state = capture_rng()
        try:
            get_task_dict(list(self.tasks), self.manager())
        except Exception as exc:  # datasets and lm-eval raise many types; the user needs one line
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"zeroshot: cannot load the data of {', '.join(self.tasks)}: {first}"
                              f"{self.offline_hint()}") from exc
        finally:
            restore_rng(state)

    def offline_hint(self) -> str:
        """What to do when the data cannot be loaded (paper7 says how to reach the Hub)."""
        return ""

    def manager(self):
        """lm-eval's task index (built once: indexing the built-in tasks takes seconds)."""
        if self._manager is None:
            with _quiet_lm_eval():
                from lm_eval.tasks import TaskManager

                self._manager = TaskManager(include_path=self.include_path, include_defaults=self.include_defaults)
        return self._manager

    # ---- scoring -------------------------------------------------------------------------
    def __call__(self, model, tokenizer, autocast) -> dict[str, float]:
        """``<task>/<metric>`` (acc, acc_norm, their ``_stderr``, ``samples``) for every task,
        and ``mean/<metric>`` over the requested tasks (only for metrics every task reports)."""
        raw = score(model, tokenizer, self.tasks, self.manager(), batch_size=self.batch_size, limit=self.limit,
                    num_fewshot=self.num_fewshot, autocast=autocast)
        return flatten(raw, self.tasks)

    def info(self) -> dict:
        """The setting results.json records beside the scores."""
        import lm_eval

        return {"zeroshot_tasks": ",".join(self.tasks), "zeroshot_num_fewshot": self.num_fewshot,
                "zeroshot_limit": self.limit, "lm_eval_version": getattr(lm_eval, "__version__", "unknown")}


def score(model, tokenizer, tasks: Sequence[str], manager, *, batch_size, limit, num_fewshot: int, autocast) -> dict:
    """``lm_eval.simple_evaluate`` on ``HFLM(pretrained=model, tokenizer=tokenizer)``; returns its
    ``results`` and ``n-samples``. The model's train/eval mode and every global RNG state are put
    back; the tokenizer is copied (HFLM may set its padding token)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    state, was_training = capture_rng(), model.training
    try:
        with _quiet_lm_eval():
            lm = HFLM(pretrained=model, tokenizer=copy.deepcopy(tokenizer), batch_size=batch_size)
            with autocast():
                out = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, num_fewshot=num_fewshot,
                                      limit=limit, log_samples=False)
    finally:
        model.train(was_training)
        restore_rng(state)
    return {"results": out["results"], "n-samples": out.get("n-samples", {})}


def flatten(raw: dict, tasks: Sequence[str]) -> dict[str, float]:
    """lm-eval's ``{"results": {task: {"acc,none": ...}}}`` as flat ``<task>/<metric>`` keys, plus
    ``mean/<metric>`` (the unweighted mean over `tasks`, as the papers report it) for each metric
    that every requested task has."""
    out: dict[str, float] = {}
    for task, values in raw["results"].items():
        for metric in METRICS:
            for key in (metric, f"{metric}_stderr"):
                value = values.get(f"{key},none")
                if isinstance(value, (int, float)):
                    out[f"{task}/{key}"] = float(value)
        samples = raw.get("n-samples", {}).get(task, {}).get("effective")
        if samples is not None:
            out[f"{task}/samples"] = int(samples)
    for metric in METRICS:
        values = [out.get(f"{t}/{metric}") for t in tasks]
        if values and all(v is not None and math.isfinite(v) for v in values):
            out[f"mean/{metric}"] = sum(values) / len(values)
    return out


@contextlib.contextmanager
def _quiet_lm_eval():
    """lm-eval logs every step at INFO; the run keeps its warnings only."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
