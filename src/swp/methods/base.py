"""The pruner interface: observe the model at tracking points, score weights, make masks."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swp.errors import ConfigError
from swp.pruning.nm import check_nm_shapes, check_nm_target, nm_keep_mask, parse_nm
from swp.pruning.select import input_feature_axis, prunable_parameters
from swp.pruning.threshold import masks_from_scores, prune_rate_for_sparsity, spreads


class Pruner:
    """Scores the prunable weights of one model and turns scores into keep-masks by Eq. 2.

    Subclasses override `scores` (and `observe` if they track training). Everything else
    (threshold, target sparsity, masks) is shared, so methods differ only where they should.

    Capabilities are declared here, never probed: the run asks `tracks` whether the dense
    phase must call `observe` (and whether a dense-cache entry's tracked state matters),
    `calibrates` whether `calibrate` needs inputs before masks are made (Wanda, SparseGPT),
    and calls `on_train_step` after every dense step (gradual pruning acts there).

    Args:
        model: the model to prune; its prunable parameters are selected once, here.
        include: regexes; only matching Linear weights are pruned (default: all but the head).
        exclude: regexes of Linear weights to keep dense.
        scope: ``layer`` (one threshold per tensor, as the paper) or ``global``.
        nm: null, or N:M (``"2:4"``, ``[2, 4]``, ``true`` = 2:4): keep the N best-scoring
            weights in every M along the input dim instead of thresholding; prune_rate is
            then ignored (sparsity is exactly 1 - N/M).
    """

    prunes = True
    tracks = False  # observe() records state at tracking points
    calibrates = False  # calibrate() must see inputs before scores() / masks()
    calibration_batches = 0  # training batches the run draws for calibrate()
    calibration_seed = 0  # seeds those draws (its own generator: the training batches are unchanged)
    # Options used only to turn scores into masks: a dense-cache entry tracked with other values
    # is still valid. Every other option is part of the cache's tracking key.
    mask_options: tuple[str, ...] = ("scope", "nm", "seed", "allocation", "calibration", "calibration_batches",
                                     "calibration_seed")

    def __init__(
        self,
        model: nn.Module,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        scope: str = "layer",
        nm=None,
    ):
        if scope not in ("layer", "global"):
            raise ConfigError(f"pruner.scope must be 'layer' or 'global', got {scope!r}")
        self.params = prunable_parameters(model, include, exclude)
        self.scope = scope
        self.nm = parse_nm(nm)
        # N:M groups run along each weight's input features: axis 1 of nn.Linear, axis 0 of
        # transformers' Conv1D (GPT-2), so masks are made with the input axis moved last.
        self.input_axis = {n: input_feature_axis(model, n) for n in self.params}
        if self.nm:
            check_nm_shapes({n: tuple(p.movedim(self.input_axis[n], -1).shape) for n, p in self.params.items()}, self.nm[1])

    def observe(self) -> None:
        """Called at each tracking point during dense training when `tracks` is true."""

    @property
    def tracking_points(self) -> int:
        """Tracking points observed so far (0 for a pruner that does not track)."""
        return 0

    def state_bytes(self) -> int:
        """Memory of the state kept beside the model (SWP's tracked history); 0 by default."""
        return 0

    def calibrate(self, model: nn.Module, batches: list, forward) -> None:
        """Sees calibration inputs before pruning when `calibrates` is true.

        Args:
            model: the model being pruned (the same one `params` belong to).
            batches: `calibration_batches` training batches drawn with `calibration_seed`, on the
                run's device.
            forward: ``forward(model, batch)`` runs the task's forward pass (no gradients).
        """

    def on_train_step(self, step: int, optimizer) -> None:
        """Called after every dense optimizer step (0-based `step`); a no-op by default."""

    def scores(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Per-tensor scores (higher = more important) and the spread the threshold scales."""
        raise NotImplementedError

    def masks(self, prune_rate: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Keep-masks and thresholds at the given prune_rate (a multiple of the std).

        With ``nm`` set the N:M rule replaces the threshold: prune_rate is ignored and no
        thresholds are returned.
        """
        score, spread = self.scores()
        if self.nm:
            return {
                n: nm_keep_mask(s.movedim(self.input_axis[n], -1), *self.nm).movedim(-1, self.input_axis[n])
                for n, s in score.items()
            }, {}
        return masks_from_scores(score, spread, prune_rate)

    def rate_for_sparsity(self, target: float) -> float:
        """The prune_rate that prunes the given fraction of the prunable weights."""
        check_nm_target(self.nm, target)
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
