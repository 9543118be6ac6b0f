"""The `distributed` config group: how a run spreads over the ranks of a torchrun job.

Each option is one class with the same small interface, so the run never branches on which
one it has:

- `setup(device)` joins the process group (torchrun's environment) and returns this rank's
  device (one device per rank);
- `wrap(model)` wraps (DDP) or shards in place (FSDP2) the model; build the pruner after it
  (FSDP2 replaces the parameters by DTensors); the run keeps using the bare `model`;
- `split(task)` makes each rank draw its share of the global batch, and routes the task's
  training loss through `training_module(model)` (the DDP wrapper), so the run's loop needs no
  change;
- `is_main` says whether this rank writes the run folder, metrics and W&B;
- `results()` is what results.json records (world size, batch per rank, global batch);
- `teardown()` leaves the process group.

The global batch is the task's `batch_size` whatever the world size: every rank draws the same
global batch from the same generator and keeps its slice (`RankSlicedTask`), so DDP at N ranks
trains on exactly the data of one process, a checkpoint does not depend on the world size, and
sweeps compare like with like.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import torch
from torch import nn

from swp.config_types import Check, Patterns, Range, check_arguments
from swp.distributed import env
from swp.distributed.data import RankSlicedTask
from swp.errors import ConfigError
from swp.models.structure import UndeclaredStructure, model_structure


class NoDistributed:
    """One process, today's behaviour (`distributed=none`, the default)."""

    kind = "none"
    shards_parameters = False

    def __init__(self):
        self.info = env.RankInfo()
        self.global_batch: int | None = None

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def world_size(self) -> int:
        return self.info.world_size

    def setup(self, device: torch.device) -> torch.device:
        if env.launched_info().world_size > 1:
            raise ConfigError(
                f"this process is one of {env.launched_info().world_size} (torchrun) but distributed=none; "
                "add distributed=ddp or distributed=fsdp"
            )
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def training_module(self, model: nn.Module) -> nn.Module:
        """The module a training forward of `model` must run (the DDP wrapper under DDP)."""
        return model

    def split(self, task):
        self.global_batch = getattr(task, "batch_size", None)
        return task

    def reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over the ranks in place (calibration statistics); identity in one process."""
        return env.sum_over_ranks(t)

    def from_main(self, t: torch.Tensor) -> torch.Tensor:
        """`t` overwritten by rank 0's copy in place; identity in one process."""
        return env.from_main_(t)

    def check_pruner(self, name: str, capabilities) -> None:
        """Refuses, in one line before training, a pruner this strategy cannot run (none here)."""

    def results(self) -> dict:
        per_rank = None if self.global_batch is None else self.global_batch // self.world_size
        return {"distributed": self.kind, "world_size": self.world_size,
                "batch_per_rank": per_rank, "global_batch": self.global_batch}

    def teardown(self) -> None:
        pass


Backend = Literal["auto", "gloo", "nccl"]  # auto: gloo on CPU, NCCL on CUDA
Timeout = Annotated[float, Range(0, 86400, lo_open=True, why="seconds")]


class _ProcessGroupStrategy(NoDistributed):
    """Shared set-up of DDP and FSDP2: the process group with a collective timeout."""

    def __init__(self, backend: Backend = "auto", timeout_s: Timeout = 300.0):
        super().__init__()
        self.backend, self.timeout_s = backend, float(timeout_s)

    def setup(self, device: torch.device) -> torch.device:
        self.info = env.init_process_group(device, self.backend, self.timeout_s)
        return env.rank_device(device, self.info)

    def split(self, task):
        self.global_batch = getattr(task, "batch_size", None)
        if self.world_size == 1:
            return task
        return RankSlicedTask(task, self.info.rank, self.world_size, route=self.training_module)

    def teardown(self) -> None:
        env.teardown()


class DDP(_ProcessGroupStrategy):
    """Data parallel: every rank holds the whole model; gradients are averaged (all-reduce).

    Args:
        backend: auto (gloo on CPU, NCCL on CUDA) | gloo | nccl.
        timeout_s: limit on every collective; a dead rank ends the others after this long.
        bucket_cap_mb: DDP's gradient bucket size.
    """

    kind = "ddp"

    def __init__(self, backend: Backend = "auto", timeout_s: Timeout = 300.0,
                 bucket_cap_mb: Annotated[float, Range(0, 4096, lo_open=True)] = 25.0):
        check_arguments(DDP, locals(), at="distributed")
        super().__init__(backend, timeout_s)
        self.bucket_cap_mb = float(bucket_cap_mb)

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        self._wrapped = DistributedDataParallel(model, device_ids=ids, bucket_cap_mb=self.bucket_cap_mb)
        return self._wrapped

    def training_module(self, model: nn.Module) -> nn.Module:
        wrapped = getattr(self, "_wrapped", None)
        return wrapped if wrapped is not None and wrapped.module is model else model


# FSDP units: the model's declared blocks, or module-path regexes (a non-empty list).
Units = Literal["auto"] | Annotated[Patterns, Check(len, "a non-empty list of module-path regexes")]


class FSDP(_ProcessGroupStrategy):
    """Fully sharded data parallel (FSDP2, `fully_shard`): parameters, gradients, optimizer
    state, SWP's tracked state and the masks are split on dim 0 over the ranks.

    Args:
        backend, timeout_s: as for DDP.
        reshard_after_forward: free the gathered parameters after each block's forward (less
            memory, one more all-gather in backward).
        units: the modules each sharded as its own unit (one all-gather per unit); the root
            module takes the rest (embeddings, tied head). ``auto``: the blocks the model
            declares (`swp.models.structure`: our GPT's blocks, a Hugging Face model's decoder
            layers); or a list of regular expressions, each matching whole module paths
            (``model\.layers\.\d+``) of modules that do not nest.
    """

    kind = "fsdp"
    shards_parameters = True

    def __init__(self, backend: Backend = "auto", timeout_s: Timeout = 300.0, reshard_after_forward: bool = True,
                 units: Units = "auto"):
        check_arguments(FSDP, locals(), at="distributed")
        super().__init__(backend, timeout_s)
        self.reshard_after_forward = bool(reshard_after_forward)
        self.units = units if units == "auto" else tuple(units)
        self.mesh = None

    def check_pruner(self, name: str, capabilities) -> None:
        """What sharded parameters cannot serve yet (calibration, N:M, uniform allocation),
        from the pruner's declared `Capabilities.unsharded`."""
        if capabilities.unsharded:
            raise ConfigError(f"pruner {name} ({capabilities.unsharded}) is not supported under "
                              f"distributed={self.kind} yet; run it in one process")

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        paths = self.unit_paths(model)  # before anything is sharded: a refusal leaves the model as it was
        dev = model_device(model)
        self.mesh = init_device_mesh(dev.type, (self.world_size,))
        for path in paths:
            fully_shard(model.get_submodule(path), mesh=self.mesh, reshard_after_forward=self.reshard_after_forward)
        fully_shard(model, mesh=self.mesh, reshard_after_forward=self.reshard_after_forward)
        return model

    def unit_paths(self, model: nn.Module) -> list[str]:
        """The module paths sharded as units, in the model's order.

        Raises:
            ConfigError: ``auto`` on a model that declares no blocks, or no module matched.
        """
        name = type(model).__name__
        if self.units == "auto":
            try:
                paths = list(model_structure(model).blocks)
            except UndeclaredStructure as exc:
                raise ConfigError(f"distributed.units=auto needs the model's blocks: {exc}; or list the units' "
                                  "module paths in distributed.units") from exc
        else:
            paths = [p for p, _ in model.named_modules() if p and any(re.fullmatch(u, p) for u in self.units)]
        if not paths:
            raise ConfigError(f"distributed.units={self.units if self.units == 'auto' else list(self.units)} matched "
                              f"no module of {name}: the whole model would be one unit (every forward gathers "
                              "every weight); list the units' module paths in distributed.units")
        return paths


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
