"""Hydra's basic sweeper plus the unpruned control of every compression sweep.

`hydra/sweeper=swp` (the default in conf/train.yaml) builds the same Cartesian product as
Hydra's basic sweeper, then:

- every job with ``pruner=none`` is reduced to what the unpruned model depends on: the
  compression keys (``target_sparsity``, ``prune_rate``) and the pruner's own options
  (``pruner.*``) are dropped, and identical jobs are run once. ``none`` ignores the target
  sparsity, so a grid of 9 sparsities x 3 seeds needs 3 control jobs, not 27;
- with ``control: true`` (the default; ``hydra.sweeper.control=false`` turns it off), a sweep
  in which some job prunes and fine-tunes (``schedule.finetune_steps > 0`` in that job's
  composed config) also gets the control: the same job with ``pruner=none``, once per
  combination of the other swept keys (seeds, schedules, models), so the summary can draw the
  dense model fine-tuned on the same schedule ("dense + same fine-tune").

Each control job runs after the second pruning job of its seed, so its dense phase is already in
the dense cache when it starts (``none`` tracks nothing and may reuse any entry with its dense key).
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override

from swp.infra.signals import SweepStop

log = logging.getLogger(__name__)

CONTROL = "none"
COMPRESSION_KEYS = ("target_sparsity", "prune_rate")
METHOD_KEYS = ("pruner", "recipe")  # what chooses the pruning method; the control drops them (and pruner.*)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value(job: List[str], key: str) -> Optional[str]:
    found = [o.split("=", 1)[1] for o in job if _key(o) == key and "=" in o]
    return found[-1] if found else None


def control_of(job: List[str]) -> List[str]:
    """The unpruned control of a job: ``pruner=none``, without compression, recipe and pruner options
    (a bake-off's recipes share one control: the experiment's budget, all of it dense)."""
    kept = [o for o in job if _key(o) not in COMPRESSION_KEYS + METHOD_KEYS and not _key(o).startswith("pruner.")]
    return kept + [f"pruner={CONTROL}"]


def with_control(jobs: List[List[str]], add_control: bool, finetunes) -> List[List[str]]:
    """The jobs with every ``pruner=none`` job deduplicated and, if `add_control`, one control per
    distinct fine-tuning job.

    Each control is placed after the second pruning job of its setting (its seed): late enough
    that the first one, which trains the seed's dense phase, has published it to the dense cache
    (with two jobs in parallel and the seeds innermost), early enough that a sweep cut short
    still has its reference line.

    Args:
        jobs: each job's overrides (Hydra's product).
        add_control: add the control of the pruning jobs that fine-tune.
        finetunes: job overrides -> whether that job fine-tunes (composes its config).
    """
    pruning, controls = [], {}
    for job in jobs:
        if _value(job, "pruner") == CONTROL:
            c = control_of(job)
            controls.setdefault(tuple(sorted(c)), c)
        else:
            pruning.append(job)
    keys = [tuple(sorted(control_of(job))) for job in pruning]
    if add_control:
        checked: dict = {}
        for job, key in zip(pruning, keys):
            if key not in controls:
                if key not in checked:
                    checked[key] = finetunes(control_of(job))
                if checked[key]:
                    controls[key] = control_of(job)
    after: dict = {}  # pruning job index -> the controls placed after it
    for key, control in controls.items():
        where = [i for i, k in enumerate(keys) if k == key]
        after.setdefault(where[min(1, len(where) - 1)] if where else len(pruning) - 1, []).append(control)
    out = [c for c in after.get(-1, [])]
    for i, job in enumerate(pruning):
        out.append(job)
        out.extend(after.get(i, []))
    return out


class ControlSweeper(BasicSweeper):
    """BasicSweeper whose job list gets the deduplicated unpruned control (see the module doc)."""

    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 control: bool = True):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.control = control

    def sweep(self, arguments: List[str]) -> Any:
        """The basic sweep; where the jobs run in worker processes (joblib), a stop signal to
        this process stops them all with their checkpoints (`swp.infra.signals.SweepStop`)."""
        if type(self.launcher).__name__ != "JoblibLauncher":
            return super().sweep(arguments)  # in this process (the job's own handlers) or on a cluster
        with SweepStop() as stop:
            returns = super().sweep(arguments)
        if stop.signum is not None:
            name = signal.Signals(stop.signum).name
            print(f"sweep stopped by {name}: the running jobs wrote a checkpoint, the others did not start; "
                  f"re-run the command with hydra.sweep.dir={self.config.hydra.sweep.dir} to resume",
                  file=sys.stderr, flush=True)
            sys.exit(128 + stop.signum)
        return returns

    def _finetunes(self, job: List[str]) -> bool:
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
        return int(cfg.get("schedule", {}).get("finetune_steps", 0) or 0) > 0

    def split_arguments(self, overrides: List[Override], max_batch_size: Optional[int]) -> List[List[List[str]]]:  # type: ignore[override]
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
        jobs = with_control(jobs, self.control, self._finetunes)
        n_control = sum(_value(j, "pruner") == CONTROL for j in jobs)
        if n_control:
            log.info("sweep: %d jobs, %d of them the unpruned control (pruner=none, once per setting)",
                     len(jobs), n_control)
        if max_batch_size is None:
            return [jobs]
        return [jobs[i : i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]
