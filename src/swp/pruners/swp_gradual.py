"""Gradual SWP: SWP's history score (Eq. 1) on GMP's cubic schedule, with optional regrowth.

The masks are re-chosen during dense training at the steps of the cubic schedule
(`swp.pruning.gradual`), by the tracked history instead of today's magnitude, and enforced after
every other dense step. With ``regrow`` the pruned weights keep a dense shadow trained by
straight-through gradients, its history is what SWP tracks, and every update re-chooses the
mask over all weights, so a pruned weight whose history rises comes back.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Literal

import torch

from swp.config_types import Count, Count0, Device, Fraction, Options, Patterns, check_arguments
from swp.distributed.sharding import count, distribute_like
from swp.errors import ConfigError
from swp.pruners.base import Model, Scope, magnitude_scores
from swp.pruners.capabilities import Capabilities
from swp.pruners.gmp import GMPAllocation, check_ramp, first_update_step, ramp_notes
from swp.pruners.swp import StateDtype, SWPPruner
from swp.pruning.gradual import cubic_sparsity, flipped, is_update_step, straight_through_step_
from swp.pruning.masks import MaskSet
from swp.pruning.threshold import masks_at_sparsity


class GradualSWPPruner(SWPPruner):
    """SWP pruned gradually: after dense step t (steps done) with t = start_step,
    start_step + update_every, ..., end_step the masks are made from the history so far (Eq. 1,
    the weighted average of every tracking point up to t) at the cubic schedule's s_t, as GMP
    makes them from |W|. Before the first tracking point the history is today's value.

    Without ``regrow`` a pruned weight stays 0 and so does its optimizer state; each update
    prunes more of the weights still kept, so the masks only shrink (GMP's rule).

    With ``regrow`` (SR-STE / AST's straight-through training of a dense shadow):

    - the loop's step order (`swp.training.loop`) is forward, backward, clip, step, then this
      pruner's `on_train_step`: the forward used the masked weight, so the gradients of the
      pruned entries are the straight-through gradients of their shadow; the dense phase masks
      no gradient, so the clipping norm counts them, as it would for the dense shadow;
    - the optimizer steps every entry; its moments of pruned entries keep accumulating (they
      are the shadow's, never zeroed); a pruned entry held 0, so it now holds the step's
      update, which `on_train_step` adds to the shadow (with AdamW's decay of the shadow) and
      zeroes again (`swp.pruning.gradual.straight_through_step_`);
    - tracking points (after `on_train_step`) record the shadow, so the history of a pruned
      weight goes on moving; an update re-chooses the mask over all weights; a weight that
      comes back resumes from its shadow value, a newly pruned one leaves its value there;
    - the update at end_step fixes the masks: the shadow is dropped and the pruned entries'
      moments are zeroed, so the rest of the dense phase and the fine-tuning train the kept
      weights only, as for every other pruner.

    Each update returns ``prune/sparsity_t`` (the schedule's), ``prune/mask_sparsity`` (the
    masks'), ``prune/flip_rate`` (the fraction of the mask that changed) and ``prune/regrown``
    (the fraction that came back), which the run logs to metrics.jsonl and W&B.

    Args:
        model, include, exclude, scope: see `Pruner`.
        final_sparsity, end_step, initial_sparsity, start_step, update_every, allocation: the
            cubic schedule and how s_t is spread over the tensors, as `GMPPruner`.
        regrow: keep a straight-through shadow of the pruned weights and let every update bring
            weights back.
        window, average_of, spread, state_dtype, state_device: SWP's history, see `SWPPruner`.
    """

    capabilities = Capabilities(tracks=True, modifies_dense=True)

    @classmethod
    def check_options(cls, given: Options) -> None:
        check_ramp(given, "swp_gradual")

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
        regrow: bool = False,
        window: Count0 | None = None,
        average_of: Literal["magnitude", "signed"] = "magnitude",
        spread: Literal["auto", "abs", "signed"] = "auto",
        state_dtype: StateDtype = "float32",
        state_device: Annotated[str, Device()] | None = None,
    ):
        check_arguments(GradualSWPPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, window, average_of, "importance", spread, state_dtype,
                         state_device, None, allocation)
        self.final_sparsity, self.initial_sparsity = final_sparsity, initial_sparsity
        self.start_step, self.end_step, self.update_every = start_step, end_step, update_every
        self.regrow = bool(regrow)
        self.current: MaskSet | None = None
        self.current_sparsity = 0.0  # s_t of the current masks
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {}  # regrow: the dense weights behind the masked ones
        self.declare(first_dense_prune=first_update_step(start_step, end_step, update_every))

    # ---- during dense training ------------------------------------------------------------
    @torch.no_grad()
    def on_train_step(self, step: int, optimizer) -> dict[str, float] | None:
        done = step + 1
        if self.current is not None:
            self._hold(optimizer)
        if not is_update_step(done, self.start_step, self.end_step, self.update_every):
            return None
        s_t = cubic_sparsity(done, self.initial_sparsity, self.final_sparsity, self.start_step, self.end_step)
        return self._update(s_t, optimizer, last=done >= self.end_step)

    def _tracked(self, name: str) -> torch.Tensor:
        return self.shadow[name] if name in self.shadow else super()._tracked(name)

    def _hold(self, optimizer) -> None:
        """After a step between updates: the shadow takes the step (regrow), or the pruned
        weights and their optimizer state are zeroed again (GMP's rule)."""
        if not self.shadow:
            self.current.apply(optimizer)
            return
        groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        for name, p in self.params.items():
            g = groups.get(id(p), {"lr": 0.0, "weight_decay": 0.0})
            straight_through_step_(self.shadow[name], p.data, self.current.keep[name],
                                   1.0 - g["lr"] * g.get("weight_decay", 0.0))

    def _update(self, s_t: float, optimizer, last: bool) -> dict[str, float]:
        """New masks at s_t from the history; the weights follow them (see the class doc)."""
        old = self.current.keep if self.current is not None else None
        if self.regrow and not self.shadow:
            self.shadow = {n: p.detach().clone() for n, p in self.params.items()}
        keep = self._choose(s_t, old)
        self.current, self.current_sparsity = MaskSet(self.params, keep), s_t
        self.updates += 1
        if self.shadow:  # regrown weights resume from their shadow; the masks re-zero the rest
            for name, p in self.params.items():
                p.data.copy_(self.shadow[name])
        if last or not self.shadow:
            self.shadow = {}
            self.current.apply(optimizer)  # weights and their Adam moments (fixed masks from here)
        else:
            self.current.enforce()
        return self._update_metrics(old, s_t)

    def _choose(self, s_t: float, old: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Keep-masks pruning s_t of the weights by their history; without regrowth the weights
        pruned before stay pruned (their score is set to 0, the lowest)."""
        score, spread = self.scores() if self.t else self._now()
        nested = old is not None and not self.regrow
        if nested:
            score = {n: torch.where(old[n], s, torch.zeros_like(s)) for n, s in score.items()}
        if self.allocation == "uniform":
            keep = self.uniform_masks(score, s_t)
        else:
            keep = masks_at_sparsity(score, spread, s_t)[0]
        # (ties at score 0 could otherwise swap a pruned weight for a kept zero)
        return {n: k & old[n] for n, k in keep.items()} if nested else keep

    def _now(self):
        """Eq. 1 over the one point 'now', for an update before the first tracking point."""
        return magnitude_scores({n: self._tracked(n) for n in self.params}, self.scope)

    def _update_metrics(self, old, s_t: float) -> dict[str, float]:
        total = sum(k.numel() for k in self.current.keep.values())
        new = self.current.keep
        if old is None:
            changed = sum(count(k, lambda x: ~x) for k in new.values())
            back = 0
        else:
            changed = sum(count(flipped(old[n], new[n]), lambda x: x) for n in new)
            back = sum(count(new[n] & ~old[n], lambda x: x) for n in new)
        pruned = sum(count(k, lambda x: ~x) for k in new.values())
        return {"prune/sparsity_t": s_t, "prune/mask_sparsity": pruned / total, "prune/flip_rate": changed / total,
                "prune/regrown": back / total}

    # ---- the prune stage --------------------------------------------------------------------
    def check_target(self, target: float | None) -> None:
        if target is not None and abs(target - self.final_sparsity) > 1e-12:
            raise ConfigError(f"target_sparsity={target} differs from pruner.final_sparsity={self.final_sparsity}; "
                              "gradual SWP prunes to final_sparsity (leave it at its default, the run's target)")

    def rate_for_sparsity(self, target: float) -> float:
        if abs(target - self.final_sparsity) > 1e-12:
            warnings.warn(f"target_sparsity={target} differs from pruner.final_sparsity={self.final_sparsity}: "
                          "gradual SWP's masks are made at final_sparsity", stacklevel=2)
        return 0.0

    @torch.no_grad()
    def masks(self, prune_rate: float | None):
        """The last masks (made at final_sparsity now if the dense phase ended before end_step)."""
        if self.current is None or self.current_sparsity != self.final_sparsity:
            self._update(self.final_sparsity, None, last=True)
        return dict(self.current.keep), {}

    def plan(self, tracking_points: int, train_steps: int) -> list[str]:
        return super().plan(tracking_points, train_steps) + ramp_notes(
            self.start_step, self.end_step, self.update_every, train_steps, "gradual SWP")

    def pruning_steps(self, train_steps: int) -> tuple[int, int]:
        return min(self.start_step, train_steps), min(self.end_step, train_steps)

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        keep = dict(self.current.keep) if self.current is not None else None
        return super().state_dict() | {"keep": keep, "sparsity": self.current_sparsity, "updates": self.updates,
                                       "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.current = MaskSet(self.params, state["keep"]) if state.get("keep") is not None else None
        self.current_sparsity = float(state["sparsity"])
        self.updates = int(state["updates"])
        self.shadow = {n: distribute_like(v.to(self.params[n].device, self.params[n].dtype), self.params[n])
                       for n, v in state["shadow"].items()}


