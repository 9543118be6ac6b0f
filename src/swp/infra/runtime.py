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
    return torch.device(name)


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
