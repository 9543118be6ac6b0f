"""Gradual magnitude pruning (Zhu & Gupta 2017): prune while training, along a cubic schedule."""

from __future__ import annotations

import warnings
from typing import Annotated, Literal

import torch

from swp.config_types import Count, Count0, Fraction, Options, Patterns, Why, check_arguments
from swp.errors import ConfigError
from swp.pruners.base import Model, Pruner, Scope, magnitude_scores
from swp.pruners.capabilities import Capabilities
from swp.pruning.gradual import cubic_sparsity, is_update_step
from swp.pruning.masks import MaskSet
from swp.pruning.threshold import masks_at_sparsity

# OWL needs calibration inputs before its first mask; GMP's first mask comes during training.
GMPAllocation = Annotated[Literal["shared_rate", "uniform"],
                          Why("pruner=gmp prunes while training, before owl's calibration inputs are drawn")]


class GMPPruner(Pruner):
    """Prunes during the dense phase: after step t (steps done) with t = start_step,
    start_step + update_every, ..., end_step the masks are recomputed by magnitude at the cubic
    schedule's s_t (`swp.pruning.gradual.cubic_sparsity`), the pruned weights and their optimizer
    state are zeroed, and after every other dense step they are zeroed again, so pruned weights
    stay 0 and momentum cannot revive them. Pruned weights are 0, so they stay pruned: masks only
    shrink while s_t rises.

    At the prune stage the masks are the last ones, made at final_sparsity (if the dense phase
    ended before end_step, one more update reaches it then). prune_rate plays no part;
    target_sparsity, when given, must equal final_sparsity (the config sets final_sparsity to the
    run's target_sparsity by default) or a warning says which was used (final_sparsity).

    It ``modifies_dense``: the dense weights depend on this pruner. It ``tracks`` too,
    so the dense cache keys its entry by its options and restores its masks on a hit; but a
    pruner that tracks nothing may still take any entry of the same dense key, this one
    included, until the run also keys the dense phase by a modifying pruner's options.

    Args:
        model, include, exclude, scope: see `Pruner`.
        final_sparsity: s_f, the sparsity reached at end_step and kept at the prune stage.
        end_step: t0 + n * dt, the dense step at which s_f is reached.
        initial_sparsity: s_i, the sparsity of the first update at start_step.
        start_step: t0, the dense step of the first update.
        update_every: dt, dense steps between updates.
        allocation: ``uniform`` (every tensor at s_t, the paper's per-layer rule) or
            ``shared_rate`` (s_t over all pruned tensors together, by Eq. 2's order).
    """

    capabilities = Capabilities(tracks=True, modifies_dense=True)

    @classmethod
    def check_options(cls, given: Options) -> None:
        check_ramp(given, "gmp")

    def __init__(
        self,
        model: Model,
        final_sparsity: Fraction | None,
        end_step: Count0,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        scope: Scope = "layer",
        initial_sparsity: Fraction = 0.0,
        start_step: Count0 = 0,
        update_every: Count = 10,
        allocation: GMPAllocation = "uniform",
    ):
        check_arguments(GMPPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, None, allocation)
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.start_step, self.end_step, self.update_every = start_step, end_step, update_every
        self.current: MaskSet | None = None
        self.current_sparsity = 0.0  # s_t of the current masks
        self.updates = 0
        self.declare(first_dense_prune=first_update_step(start_step, end_step, update_every))

    def scores(self):
        return magnitude_scores(self.params, self.scope)

    def _masks_at(self, fraction: float) -> dict[str, torch.Tensor]:
        score, spread = self.scores()
        if self.allocation == "uniform":
            return self.uniform_masks(score, fraction)
        return masks_at_sparsity(score, spread, fraction)[0]

    @torch.no_grad()
    def on_train_step(self, step: int, optimizer) -> None:
        done = step + 1
        if is_update_step(done, self.start_step, self.end_step, self.update_every):
            self.current_sparsity = cubic_sparsity(done, self.initial_sparsity, self.final_sparsity,
                                                   self.start_step, self.end_step)
            self.current = MaskSet(self.params, self._masks_at(self.current_sparsity))
            self.updates += 1
        if self.current is not None:
            self.current.apply(optimizer)  # weights and their Adam moments, after every step

    def plan(self, tracking_points: int, train_steps: int) -> list[str]:
        return ramp_notes(self.start_step, self.end_step, self.update_every, train_steps, "GMP")

    def check_target(self, target: float | None) -> None:
        if target is not None and abs(target - self.final_sparsity) > 1e-12:
            raise ConfigError(f"target_sparsity={target} differs from pruner.final_sparsity={self.final_sparsity}; "
                              "GMP prunes to final_sparsity (leave it at its default, the run's target)")

    def rate_for_sparsity(self, target: float) -> float:
        if abs(target - self.final_sparsity) > 1e-12:
            warnings.warn(f"target_sparsity={target} differs from pruner.final_sparsity={self.final_sparsity}: "
                          "GMP's masks are made at final_sparsity", stacklevel=2)
        return 0.0

    def masks(self, prune_rate: float | None):
        if self.current is None or self.current_sparsity != self.final_sparsity:
            self.current_sparsity = self.final_sparsity
            self.current = MaskSet(self.params, self._masks_at(self.final_sparsity))
        return dict(self.current.keep), {}

    def pruning_steps(self, train_steps: int) -> tuple[int, int]:
        return min(self.start_step, train_steps), min(self.end_step, train_steps)

    def state_dict(self) -> dict:
        keep = dict(self.current.keep) if self.current is not None else None
        return {"keep": keep, "sparsity": self.current_sparsity, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.current = MaskSet(self.params, state["keep"]) if state.get("keep") is not None else None
        self.current_sparsity = float(state.get("sparsity", 0.0))
        self.updates = int(state.get("updates", 0))


def check_ramp(given: Options, option: str) -> None:
    """A gradual pruner's cubic schedule runs from s_i at t0 up to s_f at the end step."""
    if given.final_sparsity is None:
        raise ConfigError(f"{given.key('final_sparsity')} must be a fraction in [0, 1): pruner={option} needs a final "
                          "sparsity; set target_sparsity=... (or pruner.final_sparsity); got None")
    if given.initial_sparsity > given.final_sparsity:
        raise given.refuse("initial_sparsity", f"<= {given.key('final_sparsity')} ({given.final_sparsity!r})")
    if given.start_step > given.end_step:
        raise given.refuse("start_step", f"<= {given.key('end_step')} ({given.end_step!r})")


def first_update_step(start_step: int, end_step: int, update_every: int) -> int | None:
    """The 0-based dense step after which the first masks are made (None: no update at all)."""
    first = next((done for done in range(max(start_step, 1), end_step + 1)
                  if is_update_step(done, start_step, end_step, update_every)), None)
    return None if first is None else first - 1


def ramp_notes(start_step: int, end_step: int, update_every: int, train_steps: int, who: str) -> list[str]:
    """Notes for a cubic ramp that the dense phase does not hold: the masks then jump to
    final_sparsity at pruning, which is one-shot pruning for the rest."""
    notes = []
    if end_step > train_steps:
        notes.append(f"pruner.end_step={end_step} is after the dense phase's {train_steps} steps: the ramp "
                     "is cut there and the masks jump to final_sparsity at pruning")
    last = min(end_step, train_steps)
    first = start_step if start_step >= 1 else update_every  # steps are counted from 1
    if first >= last:
        notes.append(f"pruner.update_every={update_every} leaves no update before the last one (step "
                     f"{last}): {who} prunes in one step")
    return notes
