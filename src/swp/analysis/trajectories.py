"""Weight trajectories (paper Figs. 1-2): record a fixed sample of weights at every tracking
point, then choose the weights worth drawing from their histories."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from swp.errors import ConfigError


@dataclass
class Trajectories:
    """Histories of the sampled weights.

    Attributes:
        steps: (T,) training steps of the recorded points; 0 is the initialisation.
        values: (N, T) float32 value of each sampled weight at each point.
        tensor: (N,) name of the parameter each weight belongs to.
        index: (N,) flat index of the weight inside its parameter.
        pruned: (N,) whether the final masks prune the weight (all False without pruning).
    """

    steps: np.ndarray
    values: np.ndarray
    tensor: np.ndarray
    index: np.ndarray
    pruned: np.ndarray

    def labels(self, rows) -> list[str]:
        """Readable names, ``blocks.0.attn.c_attn.weight[1234]`` plus `` (pruned)`` if pruned."""
        return [f"{self.tensor[i]}[{self.index[i]}]" + (" (pruned)" if self.pruned[i] else "") for i in rows]

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            steps=self.steps,
            values=self.values,
            tensor=self.tensor.astype(str),
            index=self.index,
            pruned=self.pruned,
        )

    @classmethod
    def load(cls, path: str | Path) -> "Trajectories":
        with np.load(path, allow_pickle=False) as f:
            return cls(**{k: f[k] for k in ("steps", "values", "tensor", "index", "pruned")})


class TrajectoryRecorder:
    """Records the values of a fixed, seeded sample of weights per prunable tensor.

    The cost is one gather per tensor per tracking point into a small buffer that stays on the
    weights' device (no host sync during training). The initialisation is recorded at
    construction as step 0, so every history starts where training starts.

    Args:
        params: the prunable parameters (name -> tensor), as the pruner selected them.
        per_tensor: weights sampled per tensor (all of a smaller tensor).
        seed: seeds the sample, so runs with the same seed follow the same weights.
    """

    def __init__(self, params: dict[str, nn.Parameter], per_tensor: int, seed: int):
        if per_tensor < 1:
            raise ConfigError(f"trajectories.per_tensor must be >= 1 (or 0 for none), got {per_tensor}")
        gen = torch.Generator().manual_seed(seed)
        self.per_tensor = per_tensor
        self.names = list(params)
        self.params = [params[n] for n in self.names]
        self.indices = []
        for p in self.params:
            idx = torch.randperm(p.numel(), generator=gen)[: min(per_tensor, p.numel())].sort().values
            self.indices.append(idx.to(p.device))
        self.steps: list[int] = []
        self._values: list[torch.Tensor] = []
        self.record(0)

    def plan(self) -> list[str]:
        """A note when every tensor is smaller than the sample (each is then recorded whole)."""
        largest = max((p.numel() for p in self.params), default=0)
        if self.per_tensor <= largest:
            return []
        return [f"trajectories.per_tensor={self.per_tensor} is more than the largest pruned tensor's {largest:,} "
                "weights: every weight is recorded"]

    def planned_bytes(self, tracking_points: int) -> int:
        """Memory the recorded values (float32) will take once every tracking point is recorded."""
        return 4 * sum(idx.numel() for idx in self.indices) * (tracking_points + 1)

    @torch.no_grad()
    def record(self, step: int) -> None:
        """Stores the sampled values after training step `step` (1-based; 0 = initialisation)."""
        self.steps.append(int(step))
        self._values.append(
            torch.cat([p.detach().reshape(-1).index_select(0, i).float() for p, i in zip(self.params, self.indices)])
        )

    def state_dict(self) -> dict:
        """The histories so far, so checkpoints and the dense cache carry them."""
        return {"steps": list(self.steps), "values": torch.stack(self._values).cpu()}

    def load_state_dict(self, state: dict) -> None:
        device = self.indices[0].device if self.indices else None
        self.steps = [int(s) for s in state["steps"]]
        self._values = [v.to(device) for v in state["values"]]

    def result(self, keep: dict[str, torch.Tensor] | None = None) -> Trajectories:
        """The histories so far; `keep` (the final keep-masks) marks the pruned weights."""
        values = torch.stack([v.cpu() for v in self._values], dim=1).numpy()
        tensor = np.concatenate([np.full(len(i), n) for n, i in zip(self.names, self.indices)])
        index = np.concatenate([i.cpu().numpy() for i in self.indices]).astype(np.int64)
        if keep is None:
            pruned = np.zeros(len(index), dtype=bool)
        else:
            pruned = np.concatenate(
                [(~keep[n].reshape(-1)[i].bool()).cpu().numpy() for n, i in zip(self.names, self.indices)]
            )
        return Trajectories(np.asarray(self.steps, dtype=np.int64), values, tensor, index, pruned)


# Choosing weights to draw. Each function takes the (N, T) histories and returns row indices;
# ties go to the lower row, so the choice is deterministic.


def random_weights(n: int, k: int, seed: int) -> np.ndarray:
    """Fig. 1a: `k` rows drawn uniformly without replacement (all rows if n <= k), seeded."""
    return np.random.default_rng(seed).permutation(n)[: min(k, n)]


def kept_and_pruned(pruned: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fig. 1b: up to k // 2 finally-pruned rows and the rest kept ones, each drawn at random,
    so the figure contrasts what the pruner removed with what it kept."""
    rng = np.random.default_rng(seed)
    pruned_rows = rng.permutation(np.flatnonzero(pruned))
    kept_rows = rng.permutation(np.flatnonzero(~pruned))
    n_pruned = min(len(pruned_rows), k // 2)
    n_kept = min(len(kept_rows), k - n_pruned)
    return np.concatenate([kept_rows[:n_kept], pruned_rows[:n_pruned]]).astype(np.int64)


def largest_rise(values: np.ndarray, k: int) -> np.ndarray:
    """Fig. 2a, weights that rise dramatically: the `k` rows with the largest growth in
    magnitude from the first to the last point, |w_T| - |w_0|, largest first."""
    rise = np.abs(values[:, -1]) - np.abs(values[:, 0])
    return np.argsort(-rise, kind="stable")[:k]


def most_stable(values: np.ndarray, k: int) -> np.ndarray:
    """Fig. 2b, weights that barely move: the `k` rows with the smallest range over the
    history, max_t w_t - min_t w_t, smallest first."""
    spread = values.max(axis=1) - values.min(axis=1)
    return np.argsort(spread, kind="stable")[:k]


def most_divergent(values: np.ndarray, k: int) -> np.ndarray:
    """Fig. 2c, weights that diverge: `k` weights that start alike and end far apart.

    Rows are ordered by their first value; among every run of `k` consecutive rows in that
    order, the one with the largest (range of last values) - (range of first values) is
    returned, ordered by first value. With fewer than `k` rows, all rows are returned.
    """
    n = len(values)
    order = np.argsort(values[:, 0], kind="stable")
    if n <= k:
        return order
    first, last = values[order, 0], values[order, -1]
    windows = np.lib.stride_tricks.sliding_window_view(last, k)
    score = (windows.max(axis=1) - windows.min(axis=1)) - (first[k - 1 :] - first[: n - k + 1])
    best = int(np.argmax(score))  # the first of equal scores
    return order[best : best + k]


CATEGORIES = {
    "rise": (largest_rise, "largest rise in |w|"),
    "stable": (most_stable, "most stable (smallest range)"),
    "divergent": (most_divergent, "divergent (start alike, end apart)"),
}
