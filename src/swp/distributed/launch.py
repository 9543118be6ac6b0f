"""Start N local processes with torchrun's environment (for tests and benchmarks on one host).

Users launch with `torchrun --nproc_per_node=N train.py ...`; this does the same for a Python
function: each process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, one
torch thread, and its return value comes back to the caller (through a file, so anything
`torch.save` can write).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, world: int, *args, threads: int = 1, timeout_s: float = 300.0) -> list:
    """Runs ``fn(*args)`` in `world` processes; returns their results in rank order.

    A failure in any process raises here with that rank's traceback (torch.multiprocessing).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="swp-spawn-") as tmp:
        mp.start_processes(_entry, args=(fn, world, port, threads, timeout_s, tmp, args), nprocs=world,
                           join=True, start_method="spawn")
        return [torch.load(Path(tmp) / f"{r}.pt", weights_only=False) for r in range(world)]


def _entry(rank: int, fn, world: int, port: int, threads: int, timeout_s: float, tmp: str, args) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(threads))
    torch.set_num_threads(threads)
    try:
        out = fn(*args)
    finally:
        from swp.distributed.env import teardown

        teardown()
    torch.save(out, Path(tmp) / f"{rank}.pt")
