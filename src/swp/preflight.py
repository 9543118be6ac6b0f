"""Checks of a run against what it will have, once its parts are built and before anything
trains or is written.

`swp.validation` checks each value on its own (a window is an integer >= 0); a value can pass
there and still take the machine down: ``pruner.window=1000000`` on a run with 4 tracking points
asks for a million-slot ring buffer per weight. Here each size-like value is compared with what
this run will actually have, the plan: its tracking points, the batches its training split
holds, the memory everything it keeps implies, and the devices this machine has. A value that
only wastes space is capped with one ``note:`` line (the results are the same); one the run
cannot honour is refused with one `ConfigError` line naming the key.

The parts say what they plan: `Pruner.plan` checks the pruner's own options against the
tracking points and `Pruner.planned_state` says what its tracked state will hold; the
task says how many batches its training split holds (`batches_per_split`). Nothing here asks
which pruner or task it is.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from swp.distributed.sharding import local_bytes
from swp.errors import ConfigError
from swp.infra.runtime import gib, machine_memory

# Integer keys whose large values cost time (or nothing), never memory, so nothing here checks
# them; every other integer key is checked against the plan, by its part's constructor, or by
# the validator (tests/integration/test_preflight.py holds every key of the config to this).
UNCHECKED = {
    "seed": "any seed is one run", "dataset.eval_seed": "any seed is one draw",
    "pruner.seed": "any seed is one draw", "pruner.calibration_seed": "any seed is one draw",
    "schedule.train_steps": "a longer dense phase: only the trajectory sample grows with it (checked)",
    "schedule.finetune_steps": "a longer fine-tune; memory does not grow with steps",
    "schedule.track_every": "fewer tracking points (the last dense step always is one)",
    "schedule.warmup_steps": "a longer warm-up", "schedule.finetune_warmup_steps": "a longer warm-up",
    "schedule.eval_every": "evaluate less often (at the phase ends only)", "schedule.log_every": "log less often",
    "checkpoint.every": "checkpoint at phase boundaries only", "checkpoint.keep": "keep every checkpoint (disk)",
    "dataset.text.max_chars": "a cut longer than the text keeps it whole",
    "trajectories.show": "each figure draws at most the weights recorded",
    "pruner.blocksize": "SparseGPT's blocks stop at each layer's width",
    "schedule.eval_every_tokens": "evaluate less often (at the phase ends only)",
    # Read only by recipe=... (schedule=bakeoff), which turns them into the schedule's lengths.
    "budget.steps": "longer phases (see schedule.train_steps)", "budget.mask_updates": "an update every step",
    "budget.tracking_points": "a tracking point every step", "budget.eval_points": "evaluate more often",
}
# AdamW keeps two float32 moments per parameter beside the weights during training.
ADAM_MOMENTS = 2


@dataclass(frozen=True)
class Demand:
    """Memory a run will hold on one kind of device, with the setting that decides it."""

    what: str
    bytes: int
    device: str  # "cpu" or "cuda"
    key: str
    advice: str


def check(parts, device: torch.device, strategy, *, memory=None) -> list[str]:
    """Runs every check; prints the notes (on the main rank) and returns them.

    Args:
        parts: the built parts (`swp.launch.Parts`: task, model, pruner, schedule, recorder).
        device: the run's device.
        strategy: the `distributed` strategy (world size, whether it shards parameters).
        memory: ``memory(device_type) -> bytes`` of this machine (tests pass their own).

    Raises:
        ConfigError: a value this run cannot honour (one line, naming the key).
    """
    check_distributed(strategy)
    check_state_device(parts.pruner.state_device)
    points = parts.schedule.tracking_points()
    notes = parts.pruner.plan(points, parts.schedule.train_steps)
    if parts.recorder is not None:
        notes += parts.recorder.plan()
    check_calibration(parts.pruner, parts.task)
    check_memory(demands(parts, device, points), memory or machine_memory, device)
    if strategy.is_main:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    return notes


def check_distributed(strategy) -> None:
    """FSDP2 in one process shards nothing and its DTensor weights cannot be saved as one."""
    if strategy.shards_parameters and strategy.world_size == 1:
        raise ConfigError("distributed=fsdp needs at least 2 processes (this job has 1: torchrun "
                          "--nproc_per_node=1); run one process with distributed=none")


def check_state_device(name: str | None) -> None:
    """A state device this machine does not have is refused now, like ``device=cuda``."""
    if not name or not str(name).startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"pruner.state_device={name} was asked for but CUDA is not available; "
                          "use pruner.state_device=cpu or null")
    index = torch.device(name).index
    if index is not None and index >= torch.cuda.device_count():
        raise ConfigError(f"pruner.state_device={name} names a GPU this machine does not have "
                          f"({torch.cuda.device_count()} visible)")


def check_calibration(pruner, task) -> None:
    """Calibration draws its batches from the training split and holds them all at once: more
    batches than the split holds only repeats its text, at the memory of all of them."""
    calibration = pruner.capabilities.calibration
    wanted = calibration.batches if calibration is not None else 0
    held = task.batches_per_split
    if wanted > held:
        raise ConfigError(f"pruner.calibration_batches={wanted} is more than the training split holds ({held} "
                          f"batches of {task.tokens_per_batch} tokens): calibration would see the same text again; "
                          f"use at most {held}")


def demands(parts, device: torch.device, points: int) -> list[Demand]:
    """What the run will hold beside its inputs: model and optimizer, the pruner's tracked
    state, the trajectory sample and the calibration batches."""
    kind = device.type
    weights = local_bytes(_unique(parts.model.parameters()))
    pruner = parts.pruner
    state_kind = torch.device(pruner.state_device).type if pruner.state_device else kind
    out = [Demand("the model and its optimizer", weights * (1 + ADAM_MOMENTS), kind, "model",
                  "choose a smaller model")]
    state, key, advice = pruner.planned_state(points)
    if state:
        out.append(Demand(f"the pruner's tracked state over {points} tracking points", state, state_kind, key,
                          advice))
    if parts.recorder is not None:
        out.append(Demand(f"the trajectory sample at {points + 1} points", parts.recorder.planned_bytes(points),
                          kind, "trajectories.per_tensor", "lower it (0 records none) or raise schedule.track_every"))
    out.append(Demand(f"a training batch of {parts.task.tokens_per_batch:,} tokens", 16 * parts.task.tokens_per_batch,
                      kind, "dataset.batch_size", "lower it"))  # its inputs and targets, at the least
    calibration = pruner.capabilities.calibration
    if calibration is not None:
        out.append(Demand(f"{calibration.batches} calibration batches",
                          calibration.batches * _batch_bytes(parts.task), kind, "pruner.calibration_batches",
                          "lower it"))
    return out


def check_memory(needs: list[Demand], memory, device: torch.device) -> None:
    """Refuses a plan that needs more memory, on any device, than this machine has in all. The
    line names the setting to lower: the largest of what the run adds to its model (state,
    trajectories, batches) whose removal alone would make the plan fit, else the largest demand."""
    for kind in sorted({d.device for d in needs}):
        mine = [d for d in needs if d.device == kind]
        total, have = sum(d.bytes for d in mine), memory(kind)
        if have and total > have:
            big = max(mine, key=lambda d: (total - d.bytes <= have and d.key != "model", d.bytes))
            also = f" ({gib(total)} with the rest)" if total > big.bytes else ""
            raise ConfigError(
                f"{big.key}: {big.what} would take {gib(big.bytes)}{also}, more than this machine's {gib(have)} of "
                f"{'GPU ' if kind == 'cuda' else ''}memory; {big.advice}")


def _batch_bytes(task) -> int:
    """Bytes of one training batch, drawn on the CPU with a generator of its own (a task draws
    with the generator it is given only, so nothing of the run's randomness is used)."""
    batch = task.train_batch(torch.Generator().manual_seed(0), torch.device("cpu"))
    return _tensor_bytes(batch)


def _tensor_bytes(obj) -> int:
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(v) for v in obj)
    fields = getattr(obj, "__dataclass_fields__", None)
    return sum(_tensor_bytes(getattr(obj, f)) for f in fields) if fields else 0


def _unique(params) -> list[torch.Tensor]:
    """Every parameter once (the GPT head shares the token embedding)."""
    return list({id(p): p for p in params}.values())
