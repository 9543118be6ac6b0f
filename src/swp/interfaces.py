"""The seams of a run, written down: what the run asks of a task, a recorder, a meter and an export.

Each is a `typing.Protocol`: an option of a config group satisfies it by shape, with no base
class to inherit. The contracts in the docstrings are what the run relies on; `Pruner` (in
`swp.pruners.base`) and `Logger` (in `swp.logging.base`) are base classes because they share
behaviour, and declare their optional capabilities as attributes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn

Autocast = Callable[[], AbstractContextManager]


@runtime_checkable
class Task(Protocol):
    """How a batch becomes a loss and which metrics a model earns (character LM, token LM, price).

    Contract:
        - `metrics` names what `evaluate` returns; the first is the headline metric that
          results.json, the summary line, the sweep figures and Hydra's return value report.
        - `lower_is_better` says how to read the headline metric.
        - `tokens_per_batch` is the unit of throughput (tokens, or examples for price).
        - `batches_per_split` is how many distinct batches the training split holds (its size
          over a batch's); calibration may not ask for more (`swp.preflight`).
        - `train_batch(generator, device)` draws with `generator` only, so a resumed phase that
          restores the generator draws the same batches.
        - `evaluate` leaves the model's train/eval mode as it found it and is deterministic.
        - `extra_results()` adds the task's reproducibility facts (split sizes, baselines) to
          results.json.
        - `next_token_logits` declares whether `loss_and_logits(model, batch)` exists: the
          training loss of `loss` together with the logits it was computed from, (batch, positions,
          vocab), one next-token distribution per position (what distillation compares). A task
          without them (price regression) declares False and the distilling recovery options
          refuse it before training.
    """

    metrics: tuple[str, ...]
    lower_is_better: bool
    tokens_per_batch: int
    batches_per_split: int
    next_token_logits: bool

    def model_kwargs(self) -> dict: ...

    def train_batch(self, generator: torch.Generator, device: torch.device) -> Any: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def loss_and_logits(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]: ...

    def evaluate(self, model: nn.Module, device: torch.device, autocast: Autocast) -> dict[str, float]: ...

    def extra_results(self) -> dict: ...


class Recorder(Protocol):
    """Extra state recorded at every tracking point (the weight trajectories of Figs. 1-2).

    Contract: `record(step)` never changes the weights; `state_dict()` / `load_state_dict()`
    round-trip everything recorded, so checkpoints and the dense cache carry it; `result(keep)`
    returns the histories with the final keep-masks (None when nothing was pruned).
    """

    def record(self, step: int) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def result(self, keep: dict[str, torch.Tensor] | None) -> Any: ...


class Meter(Protocol):
    """Energy accounting per phase (codecarbon, or the no-op `NullMeter`).

    Contract: `begin(phase)` closes the previous phase and opens the next; `end()` closes the
    last; `results()` gives flat results.json keys; `close()` is always called, also on failure,
    and a meter's own failure never fails the run.
    """

    def begin(self, phase: str) -> None: ...

    def end(self) -> None: ...

    def results(self) -> dict: ...

    def close(self) -> None: ...


class Export(Protocol):
    """Writes the finished model in a deployable form and verifies it.

    Contract: called once after the final evaluation, before results.json; returns flat keys
    for results.json (sizes, reload checks); raises `swp.errors.RunError` (or a subclass) when
    the exported model does not reproduce the run's model.
    """

    def __call__(self, *, model: nn.Module, task: Task, pruned: dict[str, nn.Parameter], out_dir: Path,
                 device: torch.device, autocast: Autocast) -> dict: ...
