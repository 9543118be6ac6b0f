"""`recovery=distill_logits` and `recovery=distill_squarehead`: the pruned student learns from
the dense teacher (the model as it was just before pruning) while it is fine-tuned with masks.

    distill_logits:     loss = (1 - weight) * task + weight * kd_logits
    distill_squarehead: loss = (1 - weight) * task + weight * kd_logits + hidden_weight * kd_hidden

with `kd_logits` and `kd_hidden` from `swp.recovery.losses`. The terms are logged separately
(``<phase>/task_loss``, ``<phase>/kd_logits``, ``<phase>/kd_hidden``; ``<phase>/loss`` is the
mixed loss that is minimised).

Where it acts: every masked fine-tune, and the dense phase of a pruner that prunes during it
(GMP) from its first mask update on, with the teacher taken right before that update: gradual
pruning loses capacity step by step, and distilling while it does is how Kurtic et al. prune
gradually. Pruners that prune once at the prune stage (magnitude, SWP, Wanda, SparseGPT) have no
pruned phase before the fine-tune: there the teacher would be the student itself.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from torch import nn

from swp.config_types import Range, check_arguments
from swp.errors import ConfigError
from swp.models.structure import model_structure
from swp.pruning.masks import MaskSet
from swp.recovery.base import Objective, Recovery
from swp.recovery.losses import kd_hidden, kd_logits
from swp.recovery.teacher import BlockOutputs, Teacher
from swp.stages import Stage

Temperature = Annotated[float, Range(0, 1e4, lo_open=True, why="both softmaxes are divided by it")]
Share = Annotated[float, Range(0, 1, why="the distillation term's share of the loss; the task loss gets the rest")]


class LogitDistillation(Recovery):
    """Distillation of the next-token distributions (`recovery=distill_logits`).

    Args:
        temperature: T > 0 of both softmaxes; the term is scaled by T^2.
        weight: the distillation term's share; the task loss gets 1 - weight (1: distillation
            alone, 0: the plain loss with the teacher's cost, for measuring it).
    """

    distills: ClassVar[bool] = True
    option: ClassVar[str] = "distill_logits"

    def __init__(self, temperature: Temperature = 2.0, weight: Share = 0.5):
        check_arguments(type(self), locals(), at="recovery")
        self.temperature, self.weight = float(temperature), float(weight)
        self.teacher: Teacher | None = None
        self.teacher_bytes = 0

    def settings(self) -> dict:
        return {"temperature": self.temperature, "weight": self.weight}

    def check(self, *, task, model: nn.Module, pruned: dict[str, nn.Parameter], finetune_steps: int,
              prunes_in_dense: bool, shards_parameters: bool) -> None:
        if not task.next_token_logits:
            raise ConfigError(f"recovery={self.option} needs a task with next-token logits; "
                              f"{type(task).__name__} has none (use recovery=plain)")
        if shards_parameters:
            raise ConfigError(f"recovery={self.option} is not supported under distributed=fsdp (the teacher would be "
                              "a second sharded model); use distributed=ddp or one process")
        if finetune_steps == 0 and not prunes_in_dense:
            raise ConfigError(f"recovery={self.option} has nothing to recover: schedule.finetune_steps=0 and the "
                              "pruner prunes once at the prune stage (set schedule.finetune_steps > 0)")

    def take_teacher(self, model: nn.Module) -> None:
        if self.teacher is None:
            self.teacher = Teacher(model)
            self.teacher_bytes = self.teacher.bytes()

    def objective(self, task, model: nn.Module, reduce=None) -> Objective:
        return DistillObjective(self, task, model, reduce)

    def hidden_term(self, student: nn.Module, reduce=None) -> HiddenTerm | None:
        """SquareHead's hidden-state term (None: logits only)."""
        return None

    def finish(self, model: nn.Module, masks: MaskSet | None) -> None:
        self.teacher = None  # its memory goes back; later checkpoints need it no more

    def restore(self, stage: Stage, model: nn.Module, masks: MaskSet | None, pruned: dict[str, nn.Parameter],
                state: dict | None) -> None:
        state = state or {}
        self.teacher_bytes = int(state.get("teacher_bytes", 0))
        if state.get("teacher") is not None:
            self.teacher = Teacher(model, state["teacher"])

    def state_dict(self) -> dict:
        teacher = {"teacher": self.teacher.state_dict()} if self.teacher is not None else {}
        return {"teacher_bytes": self.teacher_bytes} | teacher

    def results(self) -> dict:
        return super().results() | {"recovery_teacher_bytes": self.teacher_bytes}


class SquareHeadDistillation(LogitDistillation):
    """Logit distillation plus SquareHead's per-block hidden-state term
    (`recovery=distill_squarehead`; Kurtic et al. 2023).

    The blocks are the ones the model declares (`swp.models.structure`: the character GPT's
    ``structure()``, a Hugging Face model's repeated ``_no_split_modules``), never guessed.

    Args:
        temperature, weight: as `LogitDistillation`.
        hidden_weight: the hidden-state term's factor (added to the mixed loss).
    """

    option: ClassVar[str] = "distill_squarehead"

    def __init__(self, temperature: Temperature = 2.0, weight: Share = 0.5,
                 hidden_weight: Annotated[float, Range(0, 1e6)] = 1.0):
        super().__init__(temperature, weight)  # checks every argument (check_arguments of type(self))
        self.hidden_weight = float(hidden_weight)

    def settings(self) -> dict:
        return super().settings() | {"hidden_weight": self.hidden_weight}

    def check(self, *, task, model: nn.Module, pruned: dict[str, nn.Parameter], finetune_steps: int,
              prunes_in_dense: bool, shards_parameters: bool) -> None:
        super().check(task=task, model=model, pruned=pruned, finetune_steps=finetune_steps,
                      prunes_in_dense=prunes_in_dense, shards_parameters=shards_parameters)
        if not model_structure(model).blocks:  # refuses a model that declares nothing, in one line
            raise ConfigError(f"recovery={self.option} needs the model's transformer blocks; "
                              f"{type(model).__name__} declares none")

    def hidden_term(self, student: nn.Module, reduce=None) -> HiddenTerm:
        return HiddenTerm(student, self.teacher.module, model_structure(student).blocks, reduce)


class HiddenTerm:
    """Records the student's and the teacher's block outputs (hooks on the same block paths)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, paths: tuple[str, ...], reduce=None):
        self.student = BlockOutputs([student.get_submodule(p) for p in paths])
        self.teacher = BlockOutputs([teacher.get_submodule(p) for p in paths])
        self.reduce = reduce

    def clear(self) -> None:
        self.student.clear()
        self.teacher.clear()

    def value(self):
        return kd_hidden(self.student.take(), self.teacher.take(), self.reduce)

    def close(self) -> None:
        self.student.close()
        self.teacher.close()


class DistillObjective:
    """One training step's loss under distillation (see the module docstring for the mix).

    Until the teacher exists (GMP's dense steps before its first mask update) a step is plain:
    the task's loss, nothing else logged. Hooks for SquareHead are placed when the teacher is
    first used and removed by `close` (the run calls it when the phase ends).
    """

    def __init__(self, recovery: LogitDistillation, task, model: nn.Module, reduce=None):
        self.recovery, self.task, self.model, self.reduce = recovery, task, model, reduce
        self.hidden: HiddenTerm | None = None
        self._hooked = False

    def __call__(self, model: nn.Module, batch):
        r = self.recovery
        if r.teacher is None:
            return self.task.loss(model, batch), {}
        if not self._hooked:
            self.hidden, self._hooked = r.hidden_term(self.model, self.reduce), True
        if self.hidden is not None:
            self.hidden.clear()  # evaluations in between ran the student's blocks too
        task_loss, logits = self.task.loss_and_logits(model, batch)
        _, teacher_logits = r.teacher(self.task.loss_and_logits, batch)
        kd = kd_logits(logits, teacher_logits, r.temperature)
        loss = (1.0 - r.weight) * task_loss + r.weight * kd
        terms = {"task_loss": task_loss.detach(), "kd_logits": kd.detach()}
        if self.hidden is not None:
            hidden = self.hidden.value()
            loss = loss + r.hidden_weight * hidden
            terms["kd_hidden"] = hidden.detach()
        return loss, terms

    def close(self) -> None:
        if self.hidden is not None:
            self.hidden.close()
