"""Every random-number state a run consumes, as plain data that loads without pickled code.

A resumed run must draw exactly the numbers the uninterrupted run would have drawn: Python's
and NumPy's generators (seeded by `runtime.seed_everything`), torch's CPU and CUDA generators
(dropout), and the explicit batch generator of the current phase (the data position).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng() -> dict:
    """The global generators' states: tensors, ints and tuples only (``weights_only`` safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Puts back what `capture_rng` recorded."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
