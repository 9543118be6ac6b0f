"""zeroshot=local: lm-eval tasks from a folder of your own, offline."""

from __future__ import annotations

from pathlib import Path

from swp.config_types import check_arguments
from swp.errors import ConfigError
from swp.zeroshot.harness import BatchSize, Fewshot, Limit, LMEvalTasks, TaskNames


class LocalTasks(LMEvalTasks):
    """Task YAMLs in ``include_path`` whose data are local files (``dataset_path: json`` with
    ``dataset_kwargs: {data_files: ...}``), so they load with no network (docs/evaluation.md).
    Only this folder is indexed, not lm-eval's built-in tasks (that takes seconds).

    Args:
        tasks: task names defined in the folder's YAMLs.
        include_path: the folder (relative paths are taken from the directory you launch in).
        batch_size, limit, num_fewshot, after_pruning: see `LMEvalTasks`.
    """

    option = "zeroshot=local"

    def __init__(self, tasks: TaskNames, include_path: str, batch_size: BatchSize = 8, limit: Limit = None,
                 num_fewshot: Fewshot = 0, after_pruning: bool = False):
        check_arguments(LocalTasks, locals(), at="zeroshot")
        if not isinstance(include_path, str) or not Path(include_path).is_dir():
            raise ConfigError(f"zeroshot.include_path must be a folder of lm-eval task YAMLs, got {include_path!r}")
        super().__init__(tasks, include_path=str(Path(include_path).resolve()), batch_size=batch_size, limit=limit,
                         num_fewshot=num_fewshot, after_pruning=after_pruning, include_defaults=False)
