"""Statistics over seeds: the mean and spread of a point, and the paired difference of two
curves (the seed's own luck, its dense model and batches, cancels in a paired difference)."""

from __future__ import annotations

import math

# Two-sided 95% quantiles of Student's t by degrees of freedom (no scipy here).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(dof: int) -> float:
    """The 97.5% quantile of t with `dof` degrees of freedom (table above; 1.96 beyond 30)."""
    if dof in _T95:
        return _T95[dof]
    above = [k for k in _T95 if k > dof]
    return _T95[min(above)] if above else 1.96


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """The mean and the sample std (n - 1; None for one value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None)


def paired(a: dict, b: dict) -> dict | None:
    """a - b over the seeds both have (``{seed: value}`` each): n, seeds, mean, std, the 95% t
    interval (lo, hi; None for n = 1) and whether it excludes 0 (``beyond``); None without a
    common seed."""
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        return None
    mean, std = mean_std([a[s] - b[s] for s in seeds])
    half = t95(len(seeds) - 1) * std / math.sqrt(len(seeds)) if std is not None else None
    return {"n": len(seeds), "seeds": seeds, "mean": mean, "std": std,
            "lo": None if half is None else mean - half, "hi": None if half is None else mean + half,
            "beyond": None if half is None else abs(mean) > half}
