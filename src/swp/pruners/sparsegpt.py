"""SparseGPT (Frantar & Alistarh 2023): one-shot pruning with OBS reconstruction, block by block."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from swp.config_types import Count, Options, Patterns, Range, Seed, Why, check_arguments
from swp.models.structure import model_structure
from swp.pruners.base import Model, NMSpec, OwlLambda, OwlM, Pruner, magnitude_scores
from swp.pruners.calibration import Reduce, block_by_block, input_hooks, local_only, owning_modules
from swp.pruners.capabilities import Calibration
from swp.pruning.bits import PackedMasks
from swp.pruning.nm import parse_nm
from swp.pruning.sparsegpt import add_hessian_batch_, merge_hessians_, sparsegpt_prune

RankedAllocation = Annotated[Literal["uniform", "owl"], Why("SparseGPT prunes every layer at a set fraction")]


class SparseGPTPruner(Pruner):
    """SparseGPT as IST-DASLab/sparsegpt: sequential, block by block, reconstructing kept weights.

    `calibrate` keeps the calibration batches; the work happens in `masks`, once the fraction is
    known. For each block of the model (the blocks it declares, `swp.models.structure`), in
    order, the block runs on its calibration inputs with hooks on its pruned layers,
    accumulating H = 2/n X X^T per layer; each layer is then pruned and its kept weights updated
    (`swp.pruning.sparsegpt.sparsegpt_prune`) in place, and the pruned block runs once more to
    make the next block's inputs (`swp.pruners.calibration.block_by_block`: one forward per
    batch up to the first block, then two runs of each block). Every tensor is pruned at the same
    fraction (``allocation: uniform``, the reference's rule): target_sparsity, or, given only a
    prune_rate, the fraction magnitude pruning's Eq. 2 removes at that rate; under ``allocation:
    owl`` each block at its OWL sparsity instead (luuyin/OWL's ``prune_sparsegpt_outlier``: the
    outlier ratios from one dense pass over the calibration batches before the sequential one). With
    ``nm`` every row keeps N of each M inputs. The weights change at pruning time; the masks
    are keep-masks like every pruner's.

    Args:
        model, include, exclude, nm: see `Pruner`.
        allocation: ``uniform`` (the reference) or ``owl`` (`Pruner`); never ``shared_rate``.
        owl_m, owl_lambda: see `Pruner`.
        blocksize: columns per lazily updated block of the OBS sweep (128 in the reference).
        percdamp: dampening added to H's diagonal, as a fraction of its mean (0.01).
        calibration_batches: training batches the run draws for calibration (the reference uses
            128 sequences; 8 batches of 16 sequences).
        calibration_seed: seeds those draws, apart from the training batches.
    """

    @classmethod
    def check_options(cls, given: Options) -> None:
        """An OBS block holds whole N:M groups."""
        super().check_options(given)
        nm = parse_nm(given.nm)
        if nm and given.blocksize % nm[1]:
            raise given.refuse("blocksize", f"a multiple of M={nm[1]} ({given.key('nm')})")

    def __init__(
        self,
        model: Model,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        nm: NMSpec = None,
        blocksize: Count = 128,
        percdamp: Annotated[float, Range(0, 1)] = 0.01,
        calibration_batches: Count = 8,
        calibration_seed: Seed = 0,
        allocation: RankedAllocation = "uniform",
        owl_m: OwlM = 5.0,
        owl_lambda: OwlLambda = 0.08,
    ):
        check_arguments(SparseGPTPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, "layer", nm, allocation, owl_m, owl_lambda)
        self.blocksize, self.percdamp = blocksize, percdamp
        model_structure(model)  # a model that declares no blocks is refused now, before training
        self.declare(calibration=Calibration(calibration_batches, calibration_seed))
        self.model = model
        self._batches: list | None = None
        self._forward = None
        self._reduce: Reduce = local_only
        self._done: tuple[float | None, PackedMasks] | None = None  # (fraction, keep)
        self.losses: dict[str, float] = {}  # OBS loss per layer, for inspection

    def calibrate(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only) -> None:
        self.measure_outliers(model, batches, forward, reduce)  # OWL: one pass over the dense model
        self._batches, self._forward, self._reduce = batches, forward, reduce

    def scores(self):
        """Magnitude: only used to turn a prune_rate into a fraction (the rule is SparseGPT's own)."""
        return magnitude_scores(self.params, self.scope)

    def masks(self, prune_rate: float | None):
        fraction = self.fraction_for(prune_rate)
        if self._done is not None:
            if self._done[0] != fraction:
                raise RuntimeError("SparseGPT already pruned (and reconstructed) the weights at another sparsity")
            return self._done[1], {}
        if self._batches is None:
            raise RuntimeError("SparseGPT saw no calibration input: calibrate() must run before masks()")
        keep = self._prune_sequentially(fraction or 0.0)
        self._done = (fraction, keep)
        self._batches = self._forward = None  # the inputs are no longer needed
        return keep, {}

    @torch.no_grad()
    def _prune_sequentially(self, fraction: float) -> PackedMasks:
        model, keep = self.model, PackedMasks()  # a bit a weight: a byte would outgrow the pass
        fractions = self.tensor_fractions(fraction)
        modules = owning_modules(model, self.params)
        first = next(iter(self.params))  # the layer whose inputs count the calibration tokens
        self.calibration_tokens = 0
        for names, run in block_by_block(model, self.params, self._batches, self._forward):
            hessians: dict[str, torch.Tensor] = {}
            samples = dict.fromkeys(names, 0)

            def see(name: str, x: torch.Tensor) -> None:
                if name not in hessians:
                    hessians[name] = torch.zeros(x.shape[-1], x.shape[-1], dtype=torch.float32, device=x.device)
                samples[name] = add_hessian_batch_(hessians[name], samples[name], x)
                if name == first:
                    self.calibration_tokens += x[..., 0].numel()

            with input_hooks({n: modules[n] for n in names}, see):
                run()
            for name in names:
                if name not in hessians:
                    raise RuntimeError(f"calibration never reached {name}: is it used in the forward?")
                merge_hessians_(hessians[name], samples[name], self._reduce)
                p, axis = self.params[name], self.input_axis[name]
                weight = p.detach() if axis == 1 else p.detach().t()  # (out, in) for the math
                new, k, self.losses[name] = sparsegpt_prune(
                    weight, hessians.pop(name), fractions[name], self.nm, self.blocksize, self.percdamp,
                    overwrite_hessian=True)
                p.copy_(new if axis == 1 else new.t())
                keep[name] = k if axis == 1 else k.t()
        device = self.params[first].device
        self.calibration_tokens = int(self._reduce(torch.tensor([self.calibration_tokens], device=device)).item())
        return keep.reordered(self.params)
