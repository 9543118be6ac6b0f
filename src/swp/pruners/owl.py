"""OWL inside a pruner (``allocation: owl``): which weights form each layer, what calibration
measured there, and each weight tensor's sparsity at a target.

The layers are the model's blocks (`swp.pruners.calibration.sequential_blocks`); pruned weights
outside every block form one more layer. The outlier ratios are measured once, on the dense
model, from Wanda's scores |W_ij| * ||X_j||_2 (the reference's first pass runs every block on the
dense blocks' outputs, i.e. one dense forward), whatever rule the pruner then applies: the
pruner prunes each tensor of a layer at that layer's sparsity by its own rule. The math is in
`swp.pruning.owl`.
"""

from __future__ import annotations

import torch
from torch import nn

from swp.pruners.calibration import sequential_blocks
from swp.pruning.owl import outlier_ratio, owl_sparsities
from swp.pruning.wanda import wanda_scores

OUTSIDE_BLOCKS = "(outside blocks)"  # the layer of pruned weights that no block holds


def owl_layers(model: nn.Module, names) -> list[tuple[str, list[str]]]:
    """The pruned weights grouped by the model's blocks, in forward order, each group named by its
    block's module path (`OUTSIDE_BLOCKS` for the weights outside every block)."""
    paths = {id(module): path for path, module in model.named_modules()}
    return [(paths[id(block)] if block is not None else OUTSIDE_BLOCKS, members)
            for block, members in sequential_blocks(model, names)]


class OWL:
    """One pruner's OWL allocation.

    Args:
        m: OWL's M: a score above M times its layer's mean score is an outlier.
        lam: OWL's lambda: the layers' sparsities span 2 * lambda around the target.
        layers: the pruned weights' names grouped by layer (`owl_layers`).
        sizes: the number of elements of each pruned weight.

    Attributes:
        ratios: each layer's outlier ratio, once `measure` ran (None before).
        sparsities: each layer's sparsity at the last target asked for (None before).
    """

    def __init__(self, m: float, lam: float, layers: list[tuple[str, list[str]]], sizes: dict[str, int]):
        self.m, self.lam, self.layers = float(m), float(lam), layers
        self.sizes = [sum(sizes[n] for n in names) for _, names in layers]
        self.ratios: list[float] | None = None
        self.sparsities: list[float] | None = None

    @torch.no_grad()
    def measure(self, params: dict[str, torch.Tensor], norms: dict[str, torch.Tensor],
                input_axis: dict[str, int]) -> None:
        """Each layer's outlier ratio from its weights and their inputs' norms (||X_j||_2 per input
        feature, already summed over ranks under DDP, so every rank measures the same ratios).
        One layer's scores are held at a time."""
        self.ratios = [outlier_ratio([wanda_scores(params[n], norms[n], input_axis[n]) for n in names], self.m)
                       for _, names in self.layers]

    def fractions(self, target: float) -> dict[str, float]:
        """Every pruned tensor's fraction at the overall `target`: its layer's sparsity."""
        if self.ratios is None:
            raise RuntimeError("OWL saw no calibration input: calibrate() must run before masks()")
        self.sparsities = owl_sparsities(self.ratios, self.sizes, target, self.lam)
        return {n: s for (_, names), s in zip(self.layers, self.sparsities) for n in names}

    def report(self) -> dict:
        """results.json's account: the hyper-parameters and, per layer, its weights, outlier ratio
        and sparsity."""
        layers = [{"layer": layer, "numel": size, "outlier_ratio": ratio, "sparsity": sparsity}
                  for (layer, _), size, ratio, sparsity in zip(self.layers, self.sizes, self.ratios or [],
                                                               self.sparsities or [])]
        return {"owl_m": self.m, "owl_lambda": self.lam, "owl_layers": layers}
