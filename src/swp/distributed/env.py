"""The process group of a `torchrun` job: set up from its environment, torn down once.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process.
Under SLURM without torchrun (`srun`, or `hydra/launcher=slurm` with `tasks_per_node` > 1,
where submitit starts one process per task) they are derived from SLURM's own variables
(`export_slurm_env`). One process drives one device: CUDA device LOCAL_RANK with
NCCL, or the CPU with gloo. Every collective runs under a timeout, so a rank that died makes the
others fail with an error naming the timeout instead of hanging forever.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from swp.errors import ConfigError, RunError


class RankFailedError(RunError):
    """Another rank failed or a collective timed out; the message names the rank that saw it."""


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 writes the run folder).
        world_size: processes in the job.
        local_rank: rank on this node (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def export_slurm_env(environ=os.environ) -> bool:
    """Sets torch's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT from SLURM's
    SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID / SLURM_JOB_NODELIST / SLURM_JOB_ID when this
    is one of several SLURM tasks and nothing (torchrun) set them; returns whether it did.

    Every task derives the same address (the first host of the node list) and port (from the
    job id, 20000-59999), so they meet without talking first. A MASTER_ADDR / MASTER_PORT the
    user exported is kept."""
    if "RANK" in environ or "SLURM_PROCID" not in environ:
        return False
    try:
        tasks = int(environ.get("SLURM_NTASKS", "1"))
        if tasks <= 1:
            return False
        environ.setdefault("MASTER_ADDR", first_slurm_host(environ["SLURM_JOB_NODELIST"]))
        environ.setdefault("MASTER_PORT", str(20000 + int(environ["SLURM_JOB_ID"]) % 40000))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"SLURM task without usable SLURM_NTASKS, SLURM_JOB_NODELIST, SLURM_JOB_ID: {exc}") from None
    environ.update(RANK=environ["SLURM_PROCID"], WORLD_SIZE=str(tasks), LOCAL_RANK=environ.get("SLURM_LOCALID", "0"))
    return True


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,7],cpu1`` -> ``gpu03``, ``a1,b2`` -> ``a1``."""
    head = nodelist.split(",", 1)[0]
    if "[" not in head:
        return head.strip()
    prefix, rest = nodelist.split("[", 1)
    return prefix + rest.split("]", 1)[0].split(",", 1)[0].split("-", 1)[0]


def launched_info() -> RankInfo:
    """What torchrun (or SLURM, see `export_slurm_env`) put in the environment (a single
    process when nothing is set)."""
    export_slurm_env()
    try:
        return RankInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from None


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes in the job (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes the run folder, metrics and W&B (rank 0)."""
    return rank() == 0


def choose_backend(backend: str, device: torch.device) -> str:
    """``auto``: NCCL for CUDA, gloo for the CPU."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"distributed.backend must be auto, gloo or nccl, got {backend!r}")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("distributed.backend=nccl needs device=cuda; use gloo (or auto) on the CPU")
    return backend


def rank_device(device: torch.device, info: RankInfo) -> torch.device:
    """One device per rank: cuda:LOCAL_RANK for CUDA runs, the CPU otherwise."""
    if device.type != "cuda":
        return device
    if info.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {info.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
            "launch at most one process per GPU (torchrun --nproc_per_node)"
        )
    dev = torch.device("cuda", info.local_rank)
    torch.cuda.set_device(dev)
    return dev


def init_process_group(device: torch.device, backend: str = "auto", timeout_s: float = 300.0) -> RankInfo:
    """Joins the job's process group (a no-op when it is already up or the job has one rank).

    Raises:
        ConfigError: a distributed strategy was chosen but the process was not started by
            torchrun (no WORLD_SIZE), or the backend does not fit the device.
    """
    info = launched_info()
    if "WORLD_SIZE" not in os.environ:
        raise ConfigError(
            "distributed=ddp|fsdp needs a launcher: run `torchrun --nproc_per_node=N train.py ...` "
            "(or hydra/launcher=slurm with tasks_per_node=N)"
        )
    if not dist.is_initialized():
        dist.init_process_group(
            choose_backend(backend, device), timeout=datetime.timedelta(seconds=float(timeout_s)),
            **({"device_id": torch.device("cuda", info.local_rank)} if device.type == "cuda" else {}),
        )
    return RankInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def teardown() -> None:
    """Leaves the process group (idempotent; safe after a failure)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave_together() -> None:
    """Meets the other ranks, then leaves the process group (a no-op in a single process)."""
    try:
        barrier()
    finally:
        teardown()


def barrier() -> None:
    """All ranks meet here (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. creates the run folder), then the others do."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank (a no-op in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a statistic over the ranks, in place


def local_only(t: torch.Tensor) -> torch.Tensor:
    """The `Reduce` of one process: each statistic is already the whole job's (and the identity
    wherever a collective is optional, e.g. `Placement.from_main`)."""
    return t


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over every rank, in place (a no-op in a single process); returns `t`."""
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def from_main_(t: torch.Tensor) -> torch.Tensor:
    """Overwrites `t` with rank 0's copy, in place (a no-op in a single process); returns `t`.

    Bool tensors travel as uint8 (gloo has no bool broadcast)."""
    if world_size() == 1:
        return t
    wire = t.to(torch.uint8) if t.dtype == torch.bool else t
    dist.broadcast(wire, src=0)
    if wire is not t:
        t.copy_(wire.bool())
    return t


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def as_rank_failure(exc: BaseException) -> RankFailedError:
    """A collective that failed because another rank died (or timed out) as one line naming
    this rank, e.g. ``rank 1: a collective failed (Connection closed by peer); another rank
    failed or timed out, see its error above``."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    if "]" in first and first.startswith("["):  # gloo prefixes the source location
        first = first.split("]", 1)[1].strip()
    return RankFailedError(
        f"rank {rank()} of {world_size()}: a collective failed ({first[:160]}); another rank failed or "
        "timed out (distributed.timeout_s): see the first error above"
    )


def is_collective_failure(exc: BaseException) -> bool:
    """Whether `exc` comes from the process group (a peer closed, a timeout), not from the run."""
    backend_errors = tuple(t for t in (getattr(dist, "DistBackendError", None), getattr(dist, "DistNetworkError", None))
                           if t is not None)
    if backend_errors and isinstance(exc, backend_errors):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("Connection closed by peer", "Connection reset by peer", "timed out", "Timed out"))
