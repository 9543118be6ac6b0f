"""The recovery interface: what the run asks of the `recovery` option while the pruned model is
fine-tuned with its masks, and the plain option's behaviour (the task's own loss).

`Run` calls, in this order (each a no-op here):

1. `check` before anything is built into the run: a one-line `ConfigError` where the option
   cannot work (a task without next-token logits, sharded parameters, nothing to recover);
2. `take_teacher(model)` right before the first weight is pruned: at the start of the prune
   stage, or, for a pruner that prunes during the dense phase (GMP), before its first masks;
3. `attach(model, masks, pruned)` before the first fine-tuning step (LoRA injects adapters);
4. `objective(task, model)` gives each training step's loss and its logged terms (None: the
   task's loss, exactly today's plain fine-tune);
5. `finish(model, masks)` after the last fine-tuning step (LoRA merges its adapters under the
   masks; a teacher is released).

`state_dict` / `load_state_dict` is what checkpoints and dense-cache entries carry (the
teacher's weights), and `restore(stage, model, masks, state)` rebuilds what a checkpoint of
`stage` needs before its weights are loaded (LoRA's adapters). `results()` gives results.json
its ``recovery_*`` keys.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from swp.pruning.masks import MaskSet
from swp.stages import Stage
from swp.training.loop import Objective


class Recovery:
    """Plain recovery: the fine-tune minimises the task's loss (`recovery=plain`, the default).

    Attributes:
        distills: needs the dense teacher (and acts during a dense phase that prunes, GMP's).
        adapts: trains parameters of its own (adapters) added by `attach`, so a wrapper that
            registered the trainable parameters (DDP) must wrap the model again.
    """

    distills: ClassVar[bool] = False
    adapts: ClassVar[bool] = False

    def settings(self) -> dict:
        """The option's settings, recorded in results.json as ``recovery_<name>``."""
        return {}

    def check(self, *, task, model: nn.Module, pruned: dict[str, nn.Parameter], finetune_steps: int,
              prunes_in_dense: bool, shards_parameters: bool) -> None:
        """Raises `swp.errors.ConfigError` (one line) where this option cannot work.

        Args:
            task: the run's task (its ``next_token_logits`` declaration).
            model: the run's model (its declared structure).
            pruned: the parameters the pruner selected, by name.
            finetune_steps: the schedule's fine-tuning steps.
            prunes_in_dense: the pruner prunes during the dense phase (GMP).
            shards_parameters: the parameters are sharded over ranks (FSDP2).
        """

    def take_teacher(self, model: nn.Module) -> None:
        """Keeps the dense model as the teacher (distillation only)."""

    def attach(self, model: nn.Module, masks: MaskSet | None, pruned: dict[str, nn.Parameter]) -> None:
        """Prepares the model for the fine-tune (LoRA's adapters)."""

    def objective(self, task, model: nn.Module, reduce=None) -> Objective | None:
        """The training loss; None: ``task.loss`` (nothing else logged).

        Args:
            task, model: the run's.
            reduce: sums a tensor over the ranks in place (`Placement.reduce_sum`), for terms
                normalised by a whole-batch statistic.
        """
        return None

    def finish(self, model: nn.Module, masks: MaskSet | None) -> None:
        """Ends the fine-tune: merges adapters, releases the teacher."""

    def restore(self, stage: Stage, model: nn.Module, masks: MaskSet | None, pruned: dict[str, nn.Parameter],
                state: dict | None) -> None:
        """Rebuilds, from a checkpoint of `stage` (its `state_dict` in `state`), what the run had
        then, before the checkpoint's weights are loaded into `model`."""

    def state_dict(self) -> dict:
        return {}

    def results(self) -> dict:
        """results.json keys: the settings (``recovery_<name>``) and what the option measured."""
        return {f"recovery_{k}": v for k, v in self.settings().items()}
