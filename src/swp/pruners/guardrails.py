"""Warnings about masks that are legal but almost certainly not what was meant.

A tensor pruned to (nearly) 100% cuts the network: every output of that layer becomes its
bias, and the loss after pruning says little about the method. `prune_rate=1e3` or
`target_sparsity=0.9999999` do this without an error, so the run warns, once per tensor, when
a tensor's pruned fraction exceeds `max_sparsity` (conf/train.yaml, default 0.99).
``max_sparsity=1.0`` allows every fraction silently (and lets target_sparsity go above 0.99).
"""

from __future__ import annotations

import sys
from typing import Mapping

import torch


def overpruned(keep: Mapping[str, torch.Tensor], max_sparsity: float) -> dict[str, float]:
    """The tensors whose pruned fraction is above `max_sparsity`, with that fraction.

    Args:
        keep: boolean keep-masks by parameter name (True = the weight stays).
        max_sparsity: the largest pruned fraction accepted without a warning, in [0, 1];
            1.0 accepts everything (a fraction is never above 1).
    """
    out = {}
    for name, mask in keep.items():
        n = mask.numel()
        if n == 0:
            continue
        pruned = 1.0 - float(mask.sum()) / n
        if pruned > max_sparsity:
            out[name] = pruned
    return out


def warn_overpruned(keep: Mapping[str, torch.Tensor], max_sparsity: float, file=None) -> dict[str, float]:
    """Prints one ``warning:`` line naming the over-pruned tensors (none: prints nothing).

    Returns:
        What `overpruned` found, so callers can also record it in results.
    """
    found = overpruned(keep, max_sparsity)
    if found:
        names = sorted(found, key=lambda n: -found[n])
        shown = ", ".join(f"{n} {found[n]:.1%}" for n in names[:4]) + (
            f" and {len(names) - 4} more" if len(names) > 4 else ""
        )
        print(
            f"warning: {len(found)} tensor(s) pruned beyond max_sparsity={max_sparsity:g} ({shown}); "
            "lower prune_rate / target_sparsity, or set max_sparsity=1.0 to allow it",
            file=file or sys.stderr,
        )
    return found
