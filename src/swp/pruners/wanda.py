"""Wanda (Sun et al. 2023): prune by |W| times the norm of the weight's input feature."""

from __future__ import annotations

import torch
from torch import nn

from swp.config_types import Count, Options, Patterns, Seed, check_arguments
from swp.errors import ConfigError
from swp.models.structure import model_structure
from swp.pruners.base import RANKED, Allocation, Model, NMSpec, OwlLambda, OwlM, Pruner, Scope
from swp.pruners.calibration import (
    Reduce,
    block_by_block,
    first_stack_recording,
    input_norms,
    local_only,
    measured_norms,
    owning_modules,
)
from swp.pruners.capabilities import Calibration, Capabilities
from swp.pruning.bits import PackedMasks
from swp.pruning.nm import parse_nm
from swp.pruning.threshold import spreads
from swp.pruning.wanda import wanda_scores


class WandaPruner(Pruner):
    """Pruning by Weights AND activations (locuslab/wanda, ``prune_wanda``).

    `calibrate` runs the calibration batches once with hooks on every pruned layer and keeps
    ||X_j||_2 per input feature; the score is |W_ij| * ||X_j||_2, compared within each output
    row. As the reference: ``allocation: uniform`` (default) prunes the same fraction of every
    row, lowest scores first; ``nm`` prunes within every M consecutive inputs of a row.
    ``shared_rate`` applies Eq. 2 per row (keep where score > std(row) * prune_rate). ``owl``
    prunes the same fraction of every row of a block, the blocks at OWL's sparsities from the
    dense norms (locuslab/wanda's rule inside luuyin/OWL's ``prune_wanda_outlier``).

    ``sequential`` (default, as the reference) prunes block by block (the blocks the model
    declares, `swp.models.structure`): each block's norms are measured on inputs from the
    already pruned blocks before it, and the block's pruned weights are zeroed at once
    (`swp.pruners.calibration.block_by_block`: the first block's inputs are recorded by a
    forward that stops there, then each block runs twice, to measure and, pruned, to feed the
    next), all of it in `masks`, once the fraction is known: `calibrate` only keeps the batches.
    The dense model's norms are measured (one whole forward) only where they are needed: OWL's
    outlier ratios (in `calibrate`, recording the first block's inputs on the way) and a
    prune_rate given without target_sparsity (`scores` turns it into a fraction).
    ``sequential: false`` measures every layer on the dense model in one pass.

    Args:
        model, include, exclude, scope, nm, allocation, owl_m, owl_lambda: see `Pruner` (scope
            plays no part: scores compete within rows).
        calibration_batches: training batches the run draws for calibration (the references use
            128 sequences; 8 batches of 16 sequences).
        calibration_seed: seeds those draws, apart from the training batches.
        sequential: prune block by block on the pruned blocks' outputs (needs ``uniform``, ``owl``
            or ``nm``: Eq. 2 per row at a searched rate would need every block's scores at once).
    """

    capabilities = Capabilities(compare_rows=True)

    @classmethod
    def check_options(cls, given: Options) -> None:
        """Block by block, Eq. 2 per row at a searched rate would need every block's scores at once."""
        super().check_options(given)
        if given.sequential and not parse_nm(given.nm) and given.allocation not in RANKED:
            raise ConfigError(f"{given.key('sequential')}=true needs allocation=uniform, owl or nm (set "
                              f"{given.key('sequential')}=false for allocation=shared_rate)")

    def __init__(
        self,
        model: Model,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        scope: Scope = "layer",
        nm: NMSpec = None,
        allocation: Allocation = "uniform",
        calibration_batches: Count = 8,
        calibration_seed: Seed = 0,
        sequential: bool = True,
        owl_m: OwlM = 5.0,
        owl_lambda: OwlLambda = 0.08,
    ):
        check_arguments(WandaPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, nm, allocation, owl_m, owl_lambda)
        self.declare(calibration=Calibration(calibration_batches, calibration_seed))
        self.sequential = sequential
        if sequential:
            model_structure(model)  # a model that declares no blocks is refused now, before training
        self.model = model
        self.norms: dict[str, torch.Tensor] = {}
        self._calibration: tuple | None = None  # (batches, forward, reduce, first block inputs) kept for `masks`
        self._done: tuple[float | None, PackedMasks] | None = None

    @torch.no_grad()
    def calibrate(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only) -> None:
        if not self.sequential:
            self.norms, self.calibration_tokens = input_norms(model, self.params, batches, forward, reduce=reduce)
            self.measure_outliers(model, batches, forward, reduce, norms=self.norms)  # OWL: on the dense norms
            return
        recorded = None  # block_by_block records the first block's inputs, its forward stopping there
        if self.owl is not None:  # OWL's ratios need the dense norms: one whole pass, recording on the way
            with first_stack_recording(model, self.params) as recorded:
                self.norms, self.calibration_tokens = input_norms(model, self.params, batches, forward, reduce=reduce)
            self.measure_outliers(model, batches, forward, reduce, norms=self.norms)
        self._calibration = (batches, forward, reduce, recorded)

    def masks(self, prune_rate: float | None):
        if not self.sequential:
            return super().masks(prune_rate)
        fraction = self.fraction_for(prune_rate)
        if self._done is None:
            if self._calibration is None:
                raise RuntimeError("Wanda saw no calibration input: calibrate() must run before masks()")
            self._done = (fraction, self._prune_sequentially(fraction))
            self._calibration = None
        elif self._done[0] != fraction:
            raise RuntimeError("sequential Wanda already pruned the weights at another sparsity")
        return self._done[1], {}

    @torch.no_grad()
    def _prune_sequentially(self, fraction: float | None) -> PackedMasks:
        batches, forward, reduce, recorded = self._calibration
        modules = owning_modules(self.model, self.params)
        keep = PackedMasks()  # the whole model's masks at a bit a weight: a byte would outgrow the pass
        fractions = None if self.nm else self.tensor_fractions(fraction)
        for names, run in block_by_block(self.model, self.params, batches, forward, recorded):
            norms, seen = measured_norms({n: modules[n] for n in names}, run, reduce)
            self.calibration_tokens = self.calibration_tokens or seen  # the first block's inputs
            self.norms.update(norms)
            for n in names:  # one layer's scores at a time (a block's all at once outgrew the peer)
                score = wanda_scores(self.params[n], norms[n], self.input_axis[n])
                k = self.nm_keep(n, score) if self.nm else self.rank_keep(n, score, fractions[n])
                self.params[n].mul_(k)  # the next block's inputs come from this pruned block
                keep[n] = k
        return keep.reordered(self.params)

    def scores(self):
        if not self.norms:
            self._measure_dense_norms()
        score = {n: wanda_scores(p, self.norms[n], self.input_axis[n]) for n, p in self.params.items()}
        return score, spreads(score, self.scope)

    @torch.no_grad()
    def _measure_dense_norms(self) -> None:
        """The dense model's norms, which sequential pruning at a target never needs: measured
        on first use (a prune_rate turned into a fraction), before any block is pruned."""
        if self._calibration is None:
            raise RuntimeError("Wanda saw no calibration input: calibrate() must run before scores()")
        batches, forward, reduce, _ = self._calibration
        self.norms, self.calibration_tokens = input_norms(self.model, self.params, batches, forward, reduce=reduce)

    def state_dict(self) -> dict:
        return {"norms": self.norms, "calibration_tokens": self.calibration_tokens}

    def load_state_dict(self, state: dict) -> None:
        self.norms = {n: v.to(self.params[n].device) for n, v in state.get("norms", {}).items()}
        self.calibration_tokens = int(state.get("calibration_tokens", 0))
