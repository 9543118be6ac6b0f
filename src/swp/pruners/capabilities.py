"""What a pruner does besides scoring weights, declared in one object.

The run, the dense cache and the distributed strategies read a pruner's `Capabilities`; none of
them asks which class the pruner is, and no pruner is probed with ``hasattr``. A new pruner
declares its class-level capabilities once (``capabilities = Capabilities(tracks=True)``) and,
where an option changes one, replaces it in ``__init__`` (`Pruner.declare`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Options that only turn scores into masks: a dense stage tracked with other values of these is
# still valid, so they are left out of the dense cache's tracking key. Every other option of a
# tracking pruner is part of it.
MASK_OPTIONS = ("scope", "nm", "seed", "allocation", "calibration", "calibration_batches", "calibration_seed",
                "owl_m", "owl_lambda")


@dataclass(frozen=True)
class Calibration:
    """The calibration inputs a pruner needs before its masks are made (Wanda, SparseGPT).

    Attributes:
        batches: training batches the run draws for `Pruner.calibrate`.
        seed: seeds those draws with their own generator, so the training batches are unchanged.
    """

    batches: int
    seed: int = 0


@dataclass(frozen=True)
class Capabilities:
    """A pruner's declared behaviour.

    Attributes:
        prunes: makes masks at the prune stage (False: the dense control, ``pruner=none``).
        tracks: `observe` records state at tracking points; a dense-cache entry carries it.
        calibration: the inputs `calibrate` needs before masks are made; None: no calibration.
        compare_rows: scores compete within each output row, not the whole tensor (Wanda,
            activation-aware SWP): ``uniform`` allocation prunes the same fraction of every row.
        modifies_dense: changes the weights during the dense phase (GMP), so its dense phase
            is its own: the dense cache keys it by every option of the pruner.
        first_dense_prune: the dense step (0-based) after which such a pruner makes its first
            masks (None: it prunes only at the prune stage); a distilling recovery takes its
            teacher, the dense model, right before it.
        mask_options: options that only shape masks (left out of the dense cache's tracking key).
        unsharded: why this pruner, as configured, cannot run on parameters sharded over ranks
            (FSDP2), e.g. ``"calibration"``; None when it can.
    """

    prunes: bool = True
    tracks: bool = False
    calibration: Calibration | None = None
    compare_rows: bool = False
    modifies_dense: bool = False
    first_dense_prune: int | None = None
    mask_options: tuple[str, ...] = MASK_OPTIONS
    unsharded: str | None = None

    @property
    def calibrates(self) -> bool:
        return self.calibration is not None
