"""Wanda (Sun et al. 2023, locuslab/wanda): score |W_ij| * ||X_j||_2, pruned per output row.

X_j is input feature j over every calibration token, so a weight reading a loud feature
counts more. The reference (`lib/prune.py`, `prune_wanda`) sorts each output row's scores and
prunes its lowest fraction; with N:M it prunes within every M consecutive inputs of a row. The
masks are made by `swp.pruning.threshold.lowest_fraction_keep` / `swp.pruning.nm.nm_keep_mask`
on these scores; here are the score and the input statistic.
"""

from __future__ import annotations

import torch


def add_squared_norms_(sq_norms: torch.Tensor, inputs: torch.Tensor) -> int:
    """Adds sum over tokens of x_j^2 of one batch of layer inputs (..., in_features) in place.

    Returns the number of tokens added. Summed in float32 whatever the activations' dtype.
    """
    rows = inputs.detach().reshape(-1, inputs.shape[-1]).float()
    sq_norms.add_(rows.pow(2).sum(dim=0))
    return rows.shape[0]


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor, input_axis: int) -> torch.Tensor:
    """|W| * ||X_j||_2 broadcast along the weight's input axis (1 for nn.Linear, 0 for Conv1D).

    Args:
        weight: the layer's weight.
        input_norm: ||X_j||_2 per input feature j, shape (in_features,).
        input_axis: the axis of `weight` that runs over input features.
    """
    shape = [1] * weight.dim()
    shape[input_axis] = -1
    return weight.detach().abs().float() * input_norm.to(weight.device, torch.float32).view(shape)
