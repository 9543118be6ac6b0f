"""The pruner interface: observe the model at tracking points, score weights, make masks."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swp.errors import ConfigError
from swp.pruning.select import prunable_parameters
from swp.pruning.threshold import masks_from_scores, prune_rate_for_sparsity, spreads


class Pruner:
    """Scores the prunable weights of one model and turns scores into keep-masks by Eq. 2.

    Subclasses override `scores` (and `observe` if they track training). Everything else
    (threshold, target sparsity, masks) is shared, so methods differ only where they should.

    Args:
        model: the model to prune; its prunable parameters are selected once, here.
        include: regexes; only matching Linear weights are pruned (default: all but the head).
        exclude: regexes of Linear weights to keep dense.
        scope: ``layer`` (one threshold per tensor, as the paper) or ``global``.
    """

    prunes = True

    def __init__(
        self,
        model: nn.Module,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        scope: str = "layer",
    ):
        if scope not in ("layer", "global"):
            raise ConfigError(f"pruner.scope must be 'layer' or 'global', got {scope!r}")
        self.params = prunable_parameters(model, include, exclude)
        self.scope = scope

    def observe(self) -> None:
        """Called at each tracking point during dense training; a no-op unless overridden."""

    def scores(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Per-tensor scores (higher = more important) and the spread the threshold scales."""
        raise NotImplementedError

    def masks(self, prune_rate: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Keep-masks and thresholds at the given prune_rate (a multiple of the std)."""
        score, spread = self.scores()
        return masks_from_scores(score, spread, prune_rate)

    def rate_for_sparsity(self, target: float) -> float:
        """The prune_rate that prunes the given fraction of the prunable weights."""
        score, spread = self.scores()
        return prune_rate_for_sparsity(score, spread, target)

    def artifacts(self) -> dict[str, torch.Tensor]:
        """Tensors worth saving with the run (SWP's importance); none by default."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def magnitude_scores(params: dict[str, nn.Parameter], scope: str):
    """|W| now, and its spread: the rule of Han et al. used by the magnitude baseline."""
    score = {n: p.detach().abs() for n, p in params.items()}
    return score, spreads(score, scope)
