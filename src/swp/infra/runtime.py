"""Run-level settings resolved once, before anything is built: device, precision, seed, threads
(their values are checked with the rest of the config: `swp.settings.RunSettings`)."""

from __future__ import annotations

import contextlib
import os
import random
from functools import partial

import numpy as np
import torch

from swp.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was asked for but CUDA is not available; use device=cpu")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} names a GPU this machine does not have ({torch.cuda.device_count()} visible)")
    return device


def autocast_factory(precision: str, device: torch.device):
    """A zero-argument context factory: bf16 autocast, or a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "bf16":
        return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    raise ConfigError(f"precision must be fp32 or bf16, got {precision!r}")


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch so a run is reproducible from its saved config."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    """Caps torch's CPU threads (sweep jobs use 1 each so parallel jobs don't fight for cores)."""
    if threads:
        torch.set_num_threads(int(threads))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@contextlib.contextmanager
def threads_restored():
    """Gives torch's CPU thread count and OMP_NUM_THREADS back as they were (a run's `threads`
    setting is the run's, not its caller's: a notebook keeps its own)."""
    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def machine_memory(kind: str = "cpu") -> int:
    """Bytes of memory this machine gives a run on a device kind: physical RAM (or the
    container's limit, when lower) for ``cpu``; the current GPU's total memory for ``cuda``."""
    if kind == "cuda":
        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
    except OSError:
        return ram
    return min(ram, int(limit)) if limit.isdigit() else ram


def gib(n: int) -> str:
    """Bytes, readably: ``1,830.4 GiB`` or ``12.0 MiB``."""
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.1f} MiB"


def check_fits_memory(nbytes: int, key: str, what: str, kind: str = "cpu") -> None:
    """Refuses, before it is allocated, something larger than this machine's whole memory (the
    allocation would fail, or the kernel would kill the process without a word).

    Raises:
        ConfigError: ``<key>: <what> would take N GiB, more than this machine's M GiB of memory``.
    """
    have = machine_memory(kind)
    if nbytes > have:
        raise ConfigError(f"{key}: {what} would take {gib(nbytes)}, more than this machine's {gib(have)} of memory")
