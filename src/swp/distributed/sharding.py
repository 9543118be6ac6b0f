"""Tensors that may be FSDP2 shards (DTensors): local views, cross-rank counts, full copies.

Under FSDP2 every parameter is a DTensor sharded on dim 0 over a 1-D mesh. Ops between two
DTensors with the same mesh and placements stay local (SWP's clone update, the mask multiply),
so the tracked state and the masks are kept as DTensors shaped like their weights. Only
statistics that span a whole tensor (counts, std, order statistics) need the other ranks; they
go through the helpers here, which are no-ops on plain tensors, so single-process code paths
are unchanged.

FSDP2 splits dim 0 like `torch.chunk` (the last ranks may hold fewer rows, or none); never
rebuild a global DTensor from a local shard with a guessed shape: use `shard_like`, which
takes the shape and stride from the reference weight.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

try:
    from torch.distributed.tensor import DTensor, distribute_tensor
except ImportError:  # a torch without DTensor: nothing is ever sharded
    DTensor = ()  # type: ignore[assignment]
    distribute_tensor = None  # type: ignore[assignment]


def is_sharded(t) -> bool:
    """Whether `t` is a DTensor (an FSDP2 parameter, or state kept beside one)."""
    return bool(DTensor) and isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of `t` (the tensor itself when it is not sharded)."""
    return t.to_local() if is_sharded(t) else t


def local_bytes(tensors) -> int:
    """Bytes these tensors take on this rank."""
    return sum(local(t).numel() * local(t).element_size() for t in tensors)


def group_of(t: torch.Tensor):
    """The process group a sharded tensor is split over (None for a plain tensor)."""
    return t.device_mesh.get_group() if is_sharded(t) else None


def all_reduce_(values: torch.Tensor, group, op=None) -> torch.Tensor:
    """In-place all-reduce over `group` (no-op when group is None); returns `values`."""
    if group is not None:
        dist.all_reduce(values, op=op or dist.ReduceOp.SUM, group=group)
    return values


def count(t: torch.Tensor, predicate) -> int:
    """How many elements of the whole tensor satisfy `predicate(local_part)` (summed over ranks)."""
    n = torch.tensor([int(predicate(local(t)).sum())], dtype=torch.int64, device=_host(t))
    return int(all_reduce_(n, group_of(t)))


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (an all-gather for a DTensor; `t` itself otherwise)."""
    return t.full_tensor() if is_sharded(t) else t


def from_local_like(value: torch.Tensor, ref: torch.Tensor, extra_leading: int = 0) -> torch.Tensor:
    """This rank's shard `value` as a DTensor placed like `ref` (`value` itself when ref is plain).

    Takes ref's mesh, placements, global shape and stride, so FSDP2's uneven dim-0 split is
    kept exactly. `extra_leading` dims in front of ref's (SWP's ring buffer) shift the
    placements by as many dims. No communication.
    """
    if not is_sharded(ref) or is_sharded(value):
        return value
    placements, shape = _placements(ref, extra_leading), (*value.shape[:extra_leading], *ref.shape)
    return DTensor.from_local(value, ref.device_mesh, placements, run_check=False,
                              shape=torch.Size(shape), stride=torch.empty(shape, device="meta").stride())


def distribute_like(value: torch.Tensor, ref: torch.Tensor, extra_leading: int = 0) -> torch.Tensor:
    """A full tensor (e.g. read from a checkpoint) split like `ref`; each rank keeps its part.

    No communication: every rank holds the full tensor and slices its own shard, which is how
    FSDP2 splits (torch.chunk on dim 0). `value` itself when ref is plain.
    """
    if not is_sharded(ref) or is_sharded(value):
        return value
    placements = _placements(ref, extra_leading)
    return distribute_tensor(value.to(ref.to_local().device), ref.device_mesh, placements, src_data_rank=None)


def _placements(ref, extra_leading: int):
    from torch.distributed.tensor import Shard

    return tuple(Shard(p.dim + extra_leading) if isinstance(p, Shard) else p for p in ref.placements)


def _host(t: torch.Tensor) -> torch.device:
    """Where a count must live for the tensor's backend (gloo: CPU; NCCL: the GPU)."""
    group = group_of(t)
    if group is not None and dist.get_backend(group) == "nccl":
        return local(t).device
    return torch.device("cpu")
