"""Wanda (Sun et al. 2023): prune by |W| times the norm of the weight's input feature."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swp.errors import ConfigError
from swp.methods.base import Pruner
from swp.methods.calibration import input_norms
from swp.pruning.threshold import spreads
from swp.pruning.wanda import wanda_scores


class WandaPruner(Pruner):
    """Pruning by Weights AND activations (locuslab/wanda, ``prune_wanda``).

    `calibrate` runs the calibration batches once with hooks on every pruned layer and keeps
    ||X_j||_2 per input feature; the score is |W_ij| * ||X_j||_2, compared within each output
    row. As the reference: ``allocation: uniform`` (default) prunes the same fraction of every
    row, lowest scores first; ``nm`` prunes within every M consecutive inputs of a row.
    ``shared_rate`` applies Eq. 2 per row (keep where score > std(row) * prune_rate). Unlike the
    reference, all layers see the dense model's activations (one pass, not block by block).

    Args:
        model, include, exclude, scope, nm, allocation: see `Pruner` (scope plays no part: scores
            compete within rows).
        calibration_batches: training batches the run draws for calibration (the references use
            128 sequences; 8 batches of 16 sequences).
        calibration_seed: seeds those draws, apart from the training batches.
    """

    calibrates = True
    compare_rows = True

    def __init__(
        self,
        model: nn.Module,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        scope: str = "layer",
        nm=None,
        allocation: str = "uniform",
        calibration_batches: int = 8,
        calibration_seed: int = 0,
    ):
        super().__init__(model, include, exclude, scope, nm, allocation)
        if calibration_batches < 1:
            raise ConfigError(f"pruner.calibration_batches must be >= 1, got {calibration_batches}")
        self.calibration_batches, self.calibration_seed = calibration_batches, calibration_seed
        self.norms: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def calibrate(self, model: nn.Module, batches: list, forward) -> None:
        self.norms, self.calibration_tokens = input_norms(model, self.params, batches, forward)

    def scores(self):
        if not self.norms:
            raise RuntimeError("Wanda saw no calibration input: calibrate() must run before scores()")
        score = {n: wanda_scores(p, self.norms[n], self.input_axis[n]) for n, p in self.params.items()}
        return score, spreads(score, self.scope)

    def state_dict(self) -> dict:
        return {"norms": self.norms, "calibration_tokens": self.calibration_tokens}

    def load_state_dict(self, state: dict) -> None:
        self.norms = {n: v.to(self.params[n].device) for n, v in state.get("norms", {}).items()}
        self.calibration_tokens = int(state.get("calibration_tokens", 0))
