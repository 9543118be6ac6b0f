"""Baselines: no pruning, magnitude (Eq. 2 on current |W|) and random at the same counts."""

from __future__ import annotations

from typing import Annotated, Literal

import torch

from swp.config_types import Count, Patterns, Seed, Why, check_arguments
from swp.distributed.sharding import distribute_like, full
from swp.pruners.base import Allocation, Model, NMSpec, OwlLambda, OwlM, Pruner, Scope, magnitude_scores
from swp.pruners.capabilities import Calibration, Capabilities

# Random keeps magnitude's per-tensor counts; magnitude under OWL is the pruner that offers it.
RandomAllocation = Annotated[Literal["shared_rate", "uniform"],
                             Why("pruner=random follows magnitude's counts; use pruner=magnitude for owl")]


class NoPruner(Pruner):
    """The dense reference: selects the prunable weights (for reporting) but never prunes."""

    capabilities = Capabilities(prunes=False)

    def scores(self):
        return magnitude_scores(self.params, self.scope)


class MagnitudePruner(Pruner):
    """Keeps weights whose current |W| exceeds std(|W|) * prune_rate (Han et al. 2015).

    Args:
        model, include, exclude, scope, nm, allocation, owl_m, owl_lambda: see `Pruner`.
        calibration_batches: training batches drawn for calibration under ``allocation: owl``
            (its outlier ratios need the layers' inputs; magnitude itself needs none).
        calibration_seed: seeds those draws, apart from the training batches.
    """

    def __init__(
        self,
        model: Model,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        scope: Scope = "layer",
        nm: NMSpec = None,
        allocation: Allocation = "shared_rate",
        owl_m: OwlM = 5.0,
        owl_lambda: OwlLambda = 0.08,
        calibration_batches: Count = 8,
        calibration_seed: Seed = 0,
    ):
        check_arguments(MagnitudePruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, nm, allocation, owl_m, owl_lambda)
        if self.owl is not None:
            self.declare(calibration=Calibration(calibration_batches, calibration_seed))

    def scores(self):
        return magnitude_scores(self.params, self.scope)


class RandomPruner(Pruner):
    """Prunes as many weights per tensor as magnitude pruning would, chosen at random.

    Ranking random scores by the magnitude rule's own critical rates keeps the per-tensor counts
    identical to magnitude's at every prune_rate and target_sparsity.

    Args:
        seed: seeds the random choice, so a run is reproducible from its config.
        allocation: see `Pruner` (the counts follow magnitude's under either).
    """

    def __init__(
        self,
        model: Model,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        scope: Scope = "layer",
        seed: Seed = 0,
        allocation: RandomAllocation = "shared_rate",
    ):
        check_arguments(RandomPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, allocation=allocation)
        self.seed = seed

    def scores(self):
        return magnitude_scores(self.params, self.scope)

    def masks(self, prune_rate: float | None):
        magnitude_keep, thresholds = super().masks(prune_rate)
        gen = torch.Generator().manual_seed(self.seed)
        keep = {}
        for name, sharded in magnitude_keep.items():
            mk = full(sharded)  # the whole tensor's count and order, the same on every rank (FSDP2)
            n_pruned = int((~mk).sum())
            order = torch.randperm(mk.numel(), generator=gen)
            flat = torch.ones(mk.numel(), dtype=torch.bool)
            flat[order[:n_pruned]] = False
            keep[name] = distribute_like(flat.view(mk.shape).to(mk.device), sharded)
        return keep, thresholds
