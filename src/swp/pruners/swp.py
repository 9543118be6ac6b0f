"""SWP: score each weight by the weighted average of its tracked history (Eq. 1)."""

from __future__ import annotations

import warnings
from typing import Annotated, Literal

import torch
from torch import nn

from swp.config_types import Count, Count0, Device, Options, Patterns, Seed, Why, check_arguments
from swp.distributed.sharding import distribute_like, from_local_like, local, local_bytes, local_numel
from swp.errors import ConfigError
from swp.pruners.base import Allocation, Model, NMSpec, OwlLambda, OwlM, Pruner, Scope
from swp.pruners.calibration import Reduce, input_norms, local_only
from swp.pruners.capabilities import MASK_OPTIONS, Calibration, Capabilities
from swp.pruning.importance import signed_spreads, tracked_value, update_clones_, windowed_importance
from swp.pruning.nm import parse_nm
from swp.pruning.threshold import spreads

# The tracked state is float32 only. A 16-bit state loses late tracking points: the update
# C_t = C_{t-1}(t-1)/(t+1) + 2 W_t/(t+1) adds less than half a bf16 step once t is large, so a
# linearly drifting weight's 1,000-point average is about 8% off with round-to-nearest, and
# still about 2% with stochastic rounding (measured); Kahan compensation would need a second
# 16-bit tensor, i.e. the memory of float32. state_device=cpu is the way to spare GPU memory.
DTYPES = {"float32": torch.float32}
StateDtype = Annotated[Literal["float32"], Why("a 16-bit SWP state loses late tracking points; "
                                              "use pruner.state_device=cpu to spare GPU memory")]
LOW_PRECISION = (torch.bfloat16, torch.float16)


class SWPPruner(Pruner):
    """Systematic Weight Evaluation (arXiv 2502.17071).

    Args:
        model, include, exclude, scope, nm: see `Pruner`.
        window: None averages over every tracking point with the exact online clone (one extra
            tensor per weight); an int k averages the last k+1 points from a ring buffer
            (k+1 extra tensors per weight).
        average_of: ``magnitude`` averages |w| (the summaries' wording); ``signed`` averages w
            (the authors' code).
        compare: ``importance`` compares |Imp| with the threshold; ``current`` compares
            today's |W| with it (the authors' code). ``current`` with ``nm`` is rejected: N:M
            picks within groups by the compared score alone, so the history would be unused.
        spread: the std the threshold scales: ``abs`` std(|Imp|) (Eq. 2 as written),
            ``signed`` std(Imp) (the authors' code: std of the signed clone), ``auto`` signed
            with ``compare=current`` (the authors' rule throughout) and abs otherwise. The two
            differ only when Imp has both signs (``average_of=signed``).
        state_dtype: dtype of the tracked state: ``float32`` (16-bit states are rejected: they
            lose late tracking points, see DTYPES).
        state_device: where the tracked state lives (e.g. ``cpu`` to spare GPU memory);
            None keeps it beside each weight.
        allocation, owl_m, owl_lambda: see `Pruner` (``owl`` calibrates first, like activation_aware).
        activation_aware: multiply the score by Wanda's ||X_j||_2 of the weight's input
            feature (measured by `calibrate` on calibration batches) and compare within each
            output row, as Wanda does.
        calibration_batches, calibration_seed: the batches `calibrate` sees when
            activation_aware or ``allocation: owl`` (see `WandaPruner`).

    Under FSDP2 each weight is a DTensor shard and so is its state: the clone is a DTensor with
    the weight's placements (`zeros_like`), the ring buffer holds this rank's rows only; tracking
    is elementwise, so it needs no communication and the state per rank falls as 1/N.
    """

    capabilities = Capabilities(tracks=True, mask_options=MASK_OPTIONS + ("compare", "activation_aware"))

    def __init__(
        self,
        model: Model,
        include: Patterns | None = None,
        exclude: Patterns | None = None,
        scope: Scope = "layer",
        window: Count0 | None = None,
        average_of: Literal["magnitude", "signed"] = "magnitude",
        compare: Literal["importance", "current"] = "importance",
        spread: Literal["auto", "abs", "signed"] = "auto",
        state_dtype: StateDtype = "float32",
        state_device: Annotated[str, Device()] | None = None,
        nm: NMSpec = None,
        allocation: Allocation = "shared_rate",
        activation_aware: bool = False,
        calibration_batches: Count = 8,
        calibration_seed: Seed = 0,
        owl_m: OwlM = 5.0,
        owl_lambda: OwlLambda = 0.08,
    ):
        check_arguments(SWPPruner, locals(), at="pruner")
        super().__init__(model, include, exclude, scope, nm, allocation, owl_m, owl_lambda)
        # Activation-aware SWP calibrates like Wanda and compares its scores within rows.
        self.activation_aware = bool(activation_aware)
        if self.activation_aware:
            self.declare(calibration=Calibration(calibration_batches, calibration_seed), compare_rows=True)
        elif self.owl is not None:
            self.declare(calibration=Calibration(calibration_batches, calibration_seed))
        warn_low_precision_tracking(self.params)
        self.window, self.average_of, self.compare = window, average_of, compare
        self.spread = spread if spread != "auto" else ("signed" if compare == "current" else "abs")
        self.state_dtype = DTYPES[state_dtype]
        self.state_device = state_device
        self.t = 0  # tracking points seen so far
        self.clones: dict[str, torch.Tensor] = {}
        self.ring: dict[str, torch.Tensor] = {}
        self.ring_points: list[int] = []  # point number held in each ring slot (0 = empty)

    @classmethod
    def check_options(cls, given: Options) -> None:
        """N:M with compare=current would rank today's |W| only: the history would be unused."""
        super().check_options(given)
        if given.compare == "current" and parse_nm(given.nm):
            raise ConfigError(
                f"{given.key('compare')}=current with {given.key('nm')} ignores the tracked history (N:M ranks "
                "today's |W| within each group, exactly magnitude N:M): use compare=importance, or pruner=magnitude"
            )

    @property
    def tracking_points(self) -> int:
        return self.t

    def _where(self, p: torch.Tensor) -> torch.device:
        return torch.device(self.state_device) if self.state_device else p.device

    @torch.no_grad()
    def observe(self) -> None:
        """Records tracking point t+1 for every prunable weight."""
        self.t += 1
        names = list(self.params)
        values = [tracked_value(self._tracked(n), self.average_of).to(self._where(self.params[n])) for n in names]
        if self.window is None:
            if not self.clones:
                self.clones = {n: torch.zeros_like(v, dtype=self.state_dtype) for n, v in zip(names, values)}
            update_clones_([self.clones[n] for n in names], values, self.t)
            return
        size = self.window + 1
        if not self.ring:  # a DTensor ring is [slots, *weight] with the weight's rows split
            self.ring = {n: from_local_like(local(v).new_zeros((size, *local(v).shape), dtype=self.state_dtype),
                                            self.params[n], extra_leading=1) for n, v in zip(names, values)}
            self.ring_points = [0] * size
        slot = (self.t - 1) % size
        for n, v in zip(names, values):
            local(self.ring[n])[slot].copy_(local(v))
        self.ring_points[slot] = self.t

    def _tracked(self, name: str) -> torch.Tensor:
        """The tensor whose history is recorded: the weight itself (gradual SWP's regrowth
        records the dense shadow of a masked weight instead)."""
        return self.params[name].detach()

    def importance(self) -> dict[str, torch.Tensor]:
        """Eq. 1 for every tracked weight, as float32 beside the weight, or where the state lives
        when ``state_device`` is set (so pruning a large model does not bring a float32 copy of
        every weight onto the GPU at once)."""
        if self.t == 0:
            raise RuntimeError(
                "SWP saw no tracking point: train longer or track more often (schedule.track_every)"
            )
        if self.window is None:
            # copy=True: callers own the result (scores() takes |.| in place), never the clone.
            return {n: c.to(self._where(self.params[n]), torch.float32, copy=True) for n, c in self.clones.items()}
        slots = [i for i, t in enumerate(self.ring_points) if t > 0]
        points = [self.ring_points[i] for i in slots]
        return {
            n: from_local_like(windowed_importance([local(buf)[i] for i in slots], points), self.params[n])
            .to(self._where(self.params[n]))
            for n, buf in self.ring.items()
        }

    @torch.no_grad()
    def calibrate(self, model: nn.Module, batches: list, forward, reduce: Reduce = local_only) -> None:
        """Activation-aware: Wanda's ||X_j||_2, which the base class multiplies into the scores;
        ``owl``: the blocks' outlier ratios (from those norms when measured)."""
        if self.activation_aware:
            self.activation_norms, self.calibration_tokens = input_norms(
                model, self.params, batches, forward, reduce=reduce)
        self.measure_outliers(model, batches, forward, reduce, norms=self.activation_norms)

    def scores(self):
        imp = self.importance()
        signed = signed_spreads(imp, self.scope) if self.spread == "signed" else None
        imp = {n: v.abs_() for n, v in imp.items()}  # in place: one float32 copy, not two
        spread = signed if signed is not None else spreads(imp, self.scope)
        if self.compare == "current":
            return {n: p.detach().abs() for n, p in self.params.items()}, spread
        return imp, spread

    def artifacts(self) -> dict[str, torch.Tensor]:
        return {n: v.contiguous() for n, v in self.importance().items()}

    def plan(self, tracking_points: int, train_steps: int) -> list[str]:
        """Eq. 1 needs at least one tracking point; a window wider than the run's points holds
        them all, so it is narrowed to them (the ring keeps the same points in the same slots,
        so the scores are identical) instead of allocating empty slots for every weight."""
        if tracking_points == 0:
            raise ConfigError(f"pruner=swp scores each weight by its tracked history, but this run has no tracking "
                              f"point (schedule.train_steps={train_steps}): train at least one step, or prune by "
                              "magnitude (pruner=magnitude)")
        if self.window is None or self.window + 1 <= tracking_points:
            return []
        note = (f"pruner.window={self.window} is wider than the run's {tracking_points} tracking points: the window "
                f"holds them all ({tracking_points - 1}), with the same scores")
        self.window = tracking_points - 1
        return [note]

    def planned_state(self, tracking_points: int) -> tuple[int, str, str]:
        copies = 1 if self.window is None else min(self.window, max(tracking_points - 1, 0)) + 1
        size = copies * sum(local_numel(p) for p in self.params.values()) * self.state_dtype.itemsize
        if self.window is None:
            return size, "pruner.state_device", "put the running average elsewhere (pruner.state_device=cpu)"
        return size, "pruner.window", "lower pruner.window (null keeps one running average, not window + 1 copies)"

    def state_bytes(self) -> int:
        """Memory of the tracked state: the price of SWP over magnitude pruning."""
        return local_bytes(list(self.clones.values()) + list(self.ring.values()))  # this rank's

    def state_dict(self) -> dict:
        return {"t": self.t, "clones": self.clones, "ring": self.ring, "ring_points": list(self.ring_points)}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        # float32 also for a state saved in 16 bits by an older version; full tensors (a gathered
        # checkpoint) are split like the weights under FSDP2.
        self.clones = {n: distribute_like(v.to(self._where(self.params[n]), self.state_dtype), self.params[n])
                       for n, v in state["clones"].items()}
        self.ring = {n: distribute_like(v.to(self._where(self.params[n]), self.state_dtype), self.params[n],
                                        extra_leading=1)
                     for n, v in state["ring"].items()}
        self.ring_points = list(state["ring_points"])
        if self.ring_points:  # the ring's own size (a checkpoint made before `plan` narrowed the window)
            self.window = len(self.ring_points) - 1


def warn_low_precision_tracking(params: dict[str, torch.Tensor]) -> None:
    """Warns (once per pruner) when the tracked weights are bf16/fp16: AdamW updates below half
    a 16-bit step are lost, so a small-lr fine-tune leaves the weights near the threshold
    unchanged and SWP's score collapses into today's |W| (magnitude pruning)."""
    low = sorted({str(p.dtype).removeprefix("torch.") for p in params.values() if p.dtype in LOW_PRECISION})
    if low:
        warnings.warn(
            f"SWP tracks {'/'.join(low)} weights: small fine-tuning updates are rounded away, so the "
            "tracked history barely moves; set model.dtype=float32 (with precision=bf16 for bf16 compute)",
            stacklevel=3,
        )
