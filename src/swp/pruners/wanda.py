"""Wanda (Sun et al. 2023): prune by |W| times the norm of the weight's input feature."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from swp.errors import ConfigError
from swp.pruners.base import RANKED, Pruner
from swp.pruners.calibration import Reduce, input_norms, local_only, sequential_blocks
from swp.pruners.capabilities import Calibration, Capabilities
from swp.pruning.nm import nm_keep_mask
from swp.pruning.threshold import pruned_fraction_at_rate, spreads
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

    ``sequential`` (default, as the reference) prunes block by block (the entries of the model's
    main ``nn.ModuleList``): each block's norms are measured on inputs from the already pruned
    blocks before it (each forward ends after the block), and the block's pruned weights are
    zeroed at once. `calibrate` then measures the dense model's norms too (one more pass), which
    `scores` uses to turn a prune_rate into a fraction. ``sequential: false`` measures every
    layer on the dense model in one pass.

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
        sequential: bool = True,
        owl_m: float = 5.0,
        owl_lambda: float = 0.08,
    ):
        super().__init__(model, include, exclude, scope, nm, allocation, owl_m, owl_lambda)
        if calibration_batches < 1:
            raise ConfigError(f"pruner.calibration_batches must be >= 1, got {calibration_batches}")
        if sequential and not self.nm and allocation not in RANKED:
            raise ConfigError("pruner.sequential=true needs allocation=uniform, owl or nm (set pruner.sequential=false "
                              "for allocation=shared_rate)")
        self.declare(calibration=Calibration(calibration_batches, calibration_seed))
        self.sequential = sequential
        self.model = model
        self.norms: dict[str, torch.Tensor] = {}
        self._calibration: tuple | None = None  # (batches, forward, reduce) kept for `masks`
        self._done: tuple[float | None, dict[str, torch.Tensor]] | None = None

    @torch.no_grad()
    def calibrate(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only) -> None:
        self.norms, self.calibration_tokens = input_norms(model, self.params, batches, forward, reduce=reduce)
        self.measure_outliers(model, batches, forward, reduce, norms=self.norms)  # OWL: on the dense norms
        if self.sequential:
            self._calibration = (batches, forward, reduce)

    def masks(self, prune_rate: float):
        if not self.sequential:
            return super().masks(prune_rate)
        if self.nm:
            fraction = None
        elif self._target is not None and self._target[0] == prune_rate:
            fraction = self._target[1]
        else:
            fraction = pruned_fraction_at_rate(*self._compared(*self.scores()), prune_rate)
        if self._done is None:
            if self._calibration is None:
                raise RuntimeError("Wanda saw no calibration input: calibrate() must run before masks()")
            self._done = (fraction, self._prune_sequentially(fraction))
            self._calibration = None
        elif self._done[0] != fraction:
            raise RuntimeError("sequential Wanda already pruned the weights at another sparsity")
        return self._done[1], {}

    @torch.no_grad()
    def _prune_sequentially(self, fraction: float | None) -> dict[str, torch.Tensor]:
        batches, forward, reduce = self._calibration
        keep: dict[str, torch.Tensor] = {}
        for block, names in sequential_blocks(self.model, self.params):
            norms, _ = input_norms(self.model, names, batches, forward, stop_after=block, reduce=reduce)
            self.norms.update(norms)
            score = {n: wanda_scores(self.params[n], norms[n], self.input_axis[n]) for n in names}
            if self.nm:
                made = {n: nm_keep_mask(s.movedim(self.input_axis[n], -1), *self.nm).movedim(-1, self.input_axis[n])
                        for n, s in score.items()}
            else:
                made = self.uniform_masks(score, fraction)
            for n, k in made.items():  # the next block's inputs come from this pruned block
                self.params[n].mul_(k.to(self.params[n].dtype))
            keep |= made
        return {n: keep[n] for n in self.params}

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
