"""The pruner interface: observe the model at tracking points, score weights, make masks."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Literal

import torch
from torch import nn

from swp.config_types import Check, Options, Patterns, Range, Runtime, check_arguments
from swp.distributed.env import Reduce, local_only
from swp.errors import ConfigError
from swp.pruners.calibration import input_norms
from swp.pruners.capabilities import Capabilities
from swp.pruners.owl import OWL, owl_layers
from swp.pruners.select import input_feature_axes, prunable_parameters
from swp.pruning.nm import check_nm_shapes, check_nm_target, nm_keep_mask, parse_nm
from swp.pruning.threshold import (
    lowest_fraction_keep,
    masks_at_sparsity,
    masks_from_scores,
    prune_rate_for_sparsity,
    pruned_fraction_at_rate,
    row_normalized,
    spreads,
)
from swp.pruning.wanda import wanda_scores

# How the pruned count is spread over tensors: ``shared_rate`` (Eq. 2: one prune_rate, each
# tensor's own std, so tensors end at different sparsities), ``uniform`` (every tensor, or
# every output row for row-compared pruners, at exactly the same fraction, chosen by rank) or
# ``owl`` (as uniform within each block, the blocks at OWL's sparsities: `swp.pruners.owl`).
Allocation = Literal["shared_rate", "uniform", "owl"]
ALLOCATIONS = typing.get_args(Allocation)
RANKED = ("uniform", "owl")  # the allocations that prune each tensor (or row) by rank at a set fraction
Scope = Literal["layer", "global"]
Model = Annotated[nn.Module, Runtime("the model to prune, built by the launcher")]


def _is_nm(value) -> bool:
    try:
        parse_nm(value)
    except ConfigError:
        return False
    return True


NMSpec = Annotated[object, Check(_is_nm, "null, true (2:4), 'N:M' or [N, M] with 0 < N < M")]

# OWL (Yin et al. 2023): M, the multiple of a block's mean score that makes an outlier, and
# lambda, half the span of the blocks' sparsities around the target.
OwlM = Annotated[float, Range(0, lo_open=True, why="a score above M times its block's mean is an outlier")]
OwlLambda = Annotated[float, Range(0, 1, hi_open=True, why="the blocks' sparsities span 2 lambda")]


class Pruner:
    """Scores the prunable weights of one model and turns scores into keep-masks by Eq. 2.

    Subclasses override `scores` (and `observe` if they track training). Everything else
    (threshold, target sparsity, masks) is shared, so methods differ only where they should.

    What a pruner does besides scoring is declared in one `Capabilities` object
    (`swp.pruners.capabilities`), never probed: the run, the dense cache and the distributed
    strategies read ``pruner.capabilities``. The run calls `on_train_step` after every dense
    step (gradual pruning acts there) and `observe` at tracking points when it ``tracks``.

    Args:
        model: the model to prune; its prunable parameters are selected once, here.
        include: regexes; only matching Linear weights are pruned (default: all but the head).
        exclude: regexes of Linear weights to keep dense.
        scope: ``layer`` (one threshold per tensor, as the paper) or ``global``.
        nm: null, or N:M (``"2:4"``, ``[2, 4]``, ``true`` = 2:4): keep the N best-scoring
            weights in every M along the input dim instead of thresholding; prune_rate is
            then ignored (sparsity is exactly 1 - N/M).
        allocation: ``shared_rate`` (Eq. 2, the paper's rule: one prune_rate, a threshold per
            tensor from its own spread) or ``uniform`` (every tensor pruned at exactly the same
            fraction, by rank; per output row for pruners that compare within rows). Under
            ``uniform`` the fraction is target_sparsity, or, given only a prune_rate, the
            fraction ``shared_rate`` would prune at that rate (same total, spread evenly).
            ``owl`` (OWL, Yin et al. 2023): every tensor of a block at that block's sparsity, from
            its outlier ratio on calibration inputs (`swp.pruners.owl`), by rank like ``uniform``;
            it needs calibration, which a subclass that offers it declares. Recorded as the
            attribute ``allocation`` for results.json.
        owl_m: OWL's M (a Wanda score above M times its block's mean is an outlier).
        owl_lambda: OWL's lambda (the blocks' sparsities span 2 * lambda around the target).

    Attributes:
        capabilities: this pruner's declared behaviour, with its options applied. Under
            ``compare_rows`` ``uniform`` prunes the same fraction of every row and
            ``shared_rate`` compares each score with std * rate of its own row.
        calibration_tokens: input tokens seen by ``calibrate`` (0 until it ran), for results.
        activation_norms: ||X_j||_2 per input feature of each pruned layer, set by a ``calibrate``
            that measures them (activation-aware SWP): the compared score is then
            score * ||X_j||_2, Wanda's weighting, for every rule (threshold, uniform, N:M).
    """

    capabilities = Capabilities()  # the class's; `declare` makes an instance's from its options
    calibration_tokens = 0  # tokens calibrate() saw
    activation_norms: dict[str, torch.Tensor] | None = None  # set by calibrate(): scores x ||X_j||_2 (Wanda's)
    state_device: str | None = None  # where the tracked state lives (None: beside each weight)

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
    ):
        check_arguments(Pruner, locals(), at="pruner")
        self.allocation = allocation
        self._target: tuple[float | None, float] | None = None  # (rate, target) of the last rate_for_sparsity
        self.params = prunable_parameters(model, include, exclude)
        self.scope = scope
        self.nm = parse_nm(nm)
        # N:M groups run along each weight's input features: axis 1 of nn.Linear, axis 0 of
        # transformers' Conv1D (GPT-2), so masks are made with the input axis moved last.
        self.input_axis = input_feature_axes(model, self.params)
        if self.nm:
            shapes = {n: tuple(p.movedim(self.input_axis[n], -1).shape) for n, p in self.params.items()}
            check_nm_shapes(shapes, self.nm[1])
        self.owl = self._owl(model, owl_m, owl_lambda) if allocation == "owl" else None
        self.declare()

    @classmethod
    def check_options(cls, given: Options) -> None:
        """N:M fixes every block's sparsity, so OWL has nothing to allocate. Subclasses that
        add rules of their own call this first (a pruner without ``nm`` has nothing to check)."""
        if getattr(given, "allocation", None) == "owl" and parse_nm(getattr(given, "nm", None)):
            raise ConfigError(f"{given.key('allocation')}=owl cannot be used with {given.key('nm')} (N:M fixes "
                              "every block's sparsity)")

    def _owl(self, model: nn.Module, m: float, lam: float) -> OWL:
        """OWL's allocation over this model's blocks."""
        return OWL(m, lam, owl_layers(model, self.params), {n: p.numel() for n, p in self.params.items()})

    def declare(self, **changes) -> None:
        """Sets this pruner's capabilities: the class's, with `changes` (e.g. a ``calibration``
        its options ask for), and what its options rule out on sharded parameters."""
        caps = replace(self.capabilities, **changes)
        unsharded = ("calibration" if caps.calibrates else "N:M masks" if self.nm else
                     "allocation=" + self.allocation if self.allocation in RANKED else None)
        self.capabilities = replace(caps, unsharded=unsharded)

    def observe(self) -> None:
        """Called at each tracking point during dense training when ``capabilities.tracks``."""

    @property
    def tracking_points(self) -> int:
        """Tracking points observed so far (0 for a pruner that does not track)."""
        return 0

    def state_bytes(self) -> int:
        """Memory of the state kept beside the model (SWP's tracked history); 0 by default."""
        return 0

    def plan(self, tracking_points: int, train_steps: int) -> list[str]:
        """Checks the pruner's size-like options against what the run will have (its tracking
        points and dense steps), before it trains (`swp.preflight`); returns a note for each
        value it capped (the results stay the same) or that will not act as its name says.

        Raises:
            ConfigError: an option this run cannot honour.
        """
        return []

    def planned_state(self, tracking_points: int) -> tuple[int, str, str]:
        """Bytes of tracked state this pruner will hold after `tracking_points` points, the
        setting that decides them, and how to lower them (0 for a pruner that keeps none)."""
        return 0, "", ""

    def calibrate(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only) -> None:
        """Sees calibration inputs before pruning when ``capabilities.calibration`` is set.

        Args:
            model: the model being pruned (the same one `params` belong to).
            batches: ``capabilities.calibration.batches`` training batches drawn with its seed, on the
                run's device (under DDP: this rank's slice of each).
            forward: ``forward(model, batch)`` runs the task's forward pass (no gradients).
            reduce: sums a statistic over the ranks in place (DDP); statistics gathered from
                `batches`, here or later in `masks`, go through it, so every rank prunes as one
                process that saw all the batches would.

        The base class measures OWL's outlier ratios (``allocation: owl``) on the dense model.
        """
        self.measure_outliers(model, batches, forward, reduce)

    def measure_outliers(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only,
                         norms: dict[str, torch.Tensor] | None = None) -> None:
        """OWL's outlier ratios (``allocation: owl``; a no-op otherwise) from the dense model's
        input-feature norms: `norms` when the pruner measured them anyway (Wanda), else one
        forward pass over `batches`."""
        if self.owl is None:
            return
        if norms is None:
            norms, self.calibration_tokens = input_norms(model, self.params, batches, forward, reduce=reduce)
        self.owl.measure(self.params, norms, self.input_axis)

    def on_train_step(self, step: int, optimizer) -> dict[str, float] | None:
        """Called after every dense optimizer step (0-based `step`); a no-op by default. Metrics
        it returns (e.g. a gradual pruner's mask update) are logged at that step."""

    def pruning_steps(self, train_steps: int) -> tuple[int, int]:
        """The dense steps at which pruning begins and after which the masks are final (the run's
        token accounting: dense training before, pruning-phase training between, recovery after).
        A pruner that prunes once at the prune stage: both are the end of the dense phase."""
        return train_steps, train_steps

    def scores(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Per-tensor scores (higher = more important) and the spread the threshold scales."""
        raise NotImplementedError

    def masks(self, prune_rate: float | None) -> tuple[Mapping[str, torch.Tensor], dict[str, float]]:
        """Keep-masks and thresholds at the given prune_rate (a multiple of the std), or at the
        target of `rate_for_sparsity` when `prune_rate` is what it returned (None included).
        The masks are bool tensors by name: a dict, or `PackedMasks` (a bit a weight) from the
        pruners that make them layer by layer; a caller that edits one assigns it back.

        With ``nm`` set the N:M rule replaces the threshold: prune_rate is ignored and no
        thresholds are returned; ``uniform`` allocation returns no thresholds either (it
        prunes by rank). The rate returned by `rate_for_sparsity` gives exactly its target's
        count (by rank where tied scores straddle the threshold).
        """
        score, spread = self.scores()
        score = self._weighted(score)
        if self.nm:
            return {n: self.nm_keep(n, s) for n, s in score.items()}, {}
        score, spread = self._compared(score, spread)
        target = self.target_for(prune_rate)
        if self.allocation in RANKED:
            fraction = target if target is not None else pruned_fraction_at_rate(score, spread, prune_rate)
            return self.uniform_masks(score, fraction), {}
        if target is not None:
            keep, thresholds, _ = masks_at_sparsity(score, spread, target)
            return keep, thresholds
        return masks_from_scores(score, spread, prune_rate)

    def target_for(self, prune_rate: float | None) -> float | None:
        """The target sparsity `rate_for_sparsity` was asked for when `prune_rate` is its answer
        (the masks then prune exactly that fraction); None for a rate given by the user."""
        if self._target is not None and self._target[0] == prune_rate:
            return self._target[1]
        if prune_rate is None:
            raise ValueError("masks(None): no prune_rate and no target sparsity (call rate_for_sparsity first)")
        return None

    def fraction_for(self, prune_rate: float | None) -> float | None:
        """The fraction a ranked pruner prunes at `prune_rate`: None under N:M, the target of
        `rate_for_sparsity` when `prune_rate` is its answer, else what Eq. 2 prunes at that rate
        on the compared scores."""
        if self.nm:
            return None
        target = self.target_for(prune_rate)
        return target if target is not None else pruned_fraction_at_rate(*self._compared(*self.scores()), prune_rate)

    def uniform_masks(self, score: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
        """Prunes `fraction` of every tensor (of every output row when `compare_rows`) by rank;
        under ``owl`` each tensor's own fraction (`tensor_fractions`) instead. `score` may be raw
        or row-normalized: normalizing within a row keeps its order."""
        fractions = self.tensor_fractions(fraction)
        return {n: self.rank_keep(n, s, fractions[n]) for n, s in score.items()}

    def rank_keep(self, name: str, score: torch.Tensor, fraction: float) -> torch.Tensor:
        """One tensor's keep-mask pruning `fraction` of it (of every output row when
        `compare_rows`) by rank of `score`."""
        axis = self.input_axis[name]
        return lowest_fraction_keep(score.movedim(axis, -1), fraction, self.capabilities.compare_rows).movedim(-1, axis)

    def nm_keep(self, name: str, score: torch.Tensor) -> torch.Tensor:
        """One tensor's N:M keep-mask: the N best scores of every M consecutive inputs."""
        axis = self.input_axis[name]
        return nm_keep_mask(score.movedim(axis, -1), *self.nm).movedim(-1, axis)

    def tensor_fractions(self, fraction: float) -> dict[str, float]:
        """The fraction each pruned tensor is pruned at when the whole is pruned at `fraction`:
        `fraction` for every tensor, or, under ``owl``, its block's OWL sparsity."""
        if self.owl is not None:
            return self.owl.fractions(fraction)
        return dict.fromkeys(self.params, fraction)

    def allocation_facts(self) -> dict:
        """What results.json records about the allocation beyond its name: OWL's M, lambda and
        per-block outlier ratios and sparsities (``owl_m``, ``owl_lambda``, ``owl_layers``);
        nothing for the other allocations."""
        return self.owl.report() if self.owl is not None else {}

    def _weighted(self, score: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """score * ||X_j||_2 along each weight's input axis when `activation_norms` are set."""
        if self.activation_norms is None:
            return score
        return {n: wanda_scores(s, self.activation_norms[n], self.input_axis[n]) for n, s in score.items()}

    def _compared(self, score, spread):
        """The scores and spreads Eq. 2 sees: row-normalized at spread 1 when `compare_rows`."""
        if not self.capabilities.compare_rows:
            return score, spread
        return ({n: row_normalized(s.movedim(self.input_axis[n], -1)).movedim(-1, self.input_axis[n])
                 for n, s in score.items()}, {n: 1.0 for n in score})

    def check_target(self, target: float | None) -> None:
        """Raises ConfigError, before training, when this pruner cannot honour `target`
        (N:M fixes the sparsity; GMP's is its final_sparsity)."""
        check_nm_target(self.nm, target)

    def rate_for_sparsity(self, target: float) -> float | None:
        """The prune_rate that prunes the given fraction of the prunable weights; `masks` at this
        rate prunes exactly round(target * N) weights.

        None where no rate decides the masks: N:M and the ranked allocations (``uniform``,
        ``owl``) prune by rank at `target` itself, so the search over every score at once (on an
        LLM the pruning's largest cost in time and memory: every score held together) is
        skipped, and results.json's ``prune_rate_used`` is null."""
        check_nm_target(self.nm, target)
        if self.nm or self.allocation in RANKED:
            self._target = (None, target)
            return None
        score, spread = self.scores()
        score, spread = self._compared(self._weighted(score), spread)
        rate = prune_rate_for_sparsity(score, spread, target)
        self._target = (rate, target)
        return rate

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
