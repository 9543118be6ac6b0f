"""Gradual magnitude pruning's schedule (Zhu & Gupta 2017, "To prune, or not to prune").

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3,   t in {t0, t0 + dt, ..., t0 + n * dt}

Sparsity rises fast at first, while redundant weights are plentiful, and slowly near the end.
Pure functions of the step, unit-tested at their endpoints.
"""

from __future__ import annotations


def cubic_sparsity(step: int, initial: float, final: float, start: int, end: int) -> float:
    """s_t at step `step` (steps done), with n * dt = end - start; clipped to [initial, final]
    outside [start, end]."""
    if end <= start:
        return final if step >= start else initial
    progress = min(max((step - start) / (end - start), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def is_update_step(step: int, start: int, end: int, every: int) -> bool:
    """Whether the masks are recomputed after `step` steps: every `every` steps from `start`,
    and always at `end` (so the final sparsity is reached even when end - start is not a
    multiple of `every`)."""
    return start <= step <= end and ((step - start) % every == 0 or step == end)
