"""N:M semi-structured sparsity: keep the N highest scores in every group of M consecutive
weights along the input dimension (the last dim of a Linear weight).

This is the pattern sparse tensor cores run (2:4 on NVIDIA Ampere and later). One pure
function makes the mask for every pruner; pruners only supply the scores.
"""

from __future__ import annotations

import torch

from swp.errors import ConfigError


def parse_nm(value) -> tuple[int, int] | None:
    """Reads the ``nm`` option: null (off), true (2:4), ``"N:M"`` or ``[N, M]``.

    Raises:
        ConfigError: the value is not one of these forms, or not 0 < N < M.
    """
    if value is None or value is False:
        return None
    if value is True:
        return (2, 4)
    try:
        parts = value.split(":") if isinstance(value, str) else list(value)
        n, m = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"nm must be null, true (2:4), 'N:M' or [N, M], got {value!r}") from None
    if not 0 < n < m:
        raise ConfigError(f"nm needs 0 < N < M, got {n}:{m}")
    return n, m


def check_nm_shapes(shapes: dict[str, tuple[int, ...]], m: int) -> None:
    """Raises ConfigError (before training) if a tensor's last dim is not a multiple of M."""
    bad = {n: s for n, s in shapes.items() if len(s) < 1 or s[-1] % m}
    if bad:
        name, shape = next(iter(bad.items()))
        raise ConfigError(
            f"N:M sparsity needs every pruned tensor's last dim to be a multiple of M={m}; "
            f"{name} has shape {tuple(shape)} ({len(bad)} such tensors); exclude them with pruner.exclude"
        )


def nm_keep_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask with exactly N True in every group of M consecutive elements of the last dim.

    Ties are broken by position (the earlier element is kept) so the mask is deterministic.

    Args:
        score: importance, higher is kept; its absolute value is NOT taken (callers pass
            non-negative scores already, as every pruner here does).
        n: weights kept per group.
        m: group size; ``score.shape[-1]`` must be a multiple of it.
    """
    if score.shape[-1] % m:
        raise ValueError(f"last dim {score.shape[-1]} is not a multiple of M={m}")
    groups = score.reshape(-1, m).float()
    # A stable descending sort keeps the earlier of two equal scores: deterministic ties.
    top = torch.sort(groups, dim=1, descending=True, stable=True).indices[:, :n]
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, top, True)
    return keep.view(score.shape)


def nm_violations(weight: torch.Tensor, n: int, m: int) -> int:
    """Number of M-groups of the last dim holding more than N non-zeros (0 if the N:M rule holds)."""
    nonzero = (weight.reshape(-1, m) != 0).sum(dim=1)
    return int((nonzero > n).sum())


def nm_label(nm: tuple[int, int] | None) -> str | None:
    """``"2:4"`` for results.json and the sweep CSV; None when N:M is off."""
    return f"{nm[0]}:{nm[1]}" if nm else None


def check_nm_target(nm: tuple[int, int] | None, target_sparsity: float | None) -> None:
    """N:M fixes the sparsity at 1 - N/M, so a target sparsity is contradictory input."""
    if nm and target_sparsity is not None:
        raise ConfigError(
            f"target_sparsity={target_sparsity} cannot be combined with pruner.nm={nm_label(nm)} "
            "(N:M fixes sparsity at 1 - N/M); set target_sparsity=null"
        )
