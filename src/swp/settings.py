"""The run-level settings: the top-level keys of conf/train.yaml, typed and checked.

`swp.validation.validate_config` returns a `RunSettings`; its fields are annotated like every
constructor (`swp.config_types`), and each default equals conf/train.yaml's value (a test holds
them together). The config groups (``model``, ``pruner``, ...) are not fields: each is checked
by its own ``_target_``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from swp.config_types import Count, Count0, Device, Fraction, Options, Range, Seed, check_arguments
from swp.errors import ConfigError


@dataclass(frozen=True)
class TrajectorySettings:
    """Paper Figs. 1-2: a fixed sample of weights recorded at every tracking point.

    Attributes:
        per_tensor: weights sampled per pruned tensor (0: record none, no figures).
        show: weights drawn per category in the figures.
    """

    per_tensor: Count0 = 64
    show: Count = 8

    def __post_init__(self):
        check_arguments(TrajectorySettings, vars(self), at="trajectories")


@dataclass(frozen=True)
class CheckpointSettings:
    """Checkpoints inside the run folder (docs/reliability.md).

    Attributes:
        enabled: write checkpoints (false: an interrupted run starts over).
        every: steps between checkpoints inside a phase (0: only at phase boundaries).
        keep: newest checkpoints kept.
        keep_after_success: keep them once the run's results are written.
        sharded: under distributed=fsdp, each rank writes its own shards.
    """

    enabled: bool = True
    every: Count0 = 500
    keep: Count = 2
    keep_after_success: bool = False
    sharded: bool = False

    def __post_init__(self):
        check_arguments(CheckpointSettings, vars(self), at="checkpoint")


@dataclass(frozen=True)
class DenseCacheSettings:
    """The shared dense-stage cache (train once, prune many).

    Attributes:
        enabled: reuse an identical dense phase.
        dir: the cache folder, shared by the jobs of a sweep.
    """

    enabled: bool = True
    dir: str = "outputs/dense_cache"

    def __post_init__(self):
        check_arguments(DenseCacheSettings, vars(self), at="dense_cache")

    @classmethod
    def check_options(cls, given: Options) -> None:
        if given.enabled and not given.dir.strip():
            raise given.refuse("dir", f"a folder name when {given.key('enabled')}=true")


@dataclass(frozen=True)
class BudgetSettings:
    """The bake-off's training budget, read only by ``recipe=...`` (conf/schedule/bakeoff.yaml
    derives every phase length from it; docs/bakeoff.md).

    Attributes:
        steps: training steps of every recipe at scale 1 (dense + pruning phase + recovery).
        scale: the budget sweep's factor (the evaluation token counts stay those of scale 1).
        recovery: fraction of the steps trained with the final masks after the prune stage.
        ramp_start: gradual recipes: the mask ramp starts at this fraction of the dense phase.
        mask_updates: gradual recipes: mask updates along the ramp.
        tracking_points: tracking points over the dense phase (SWP's history).
        eval_points: validation at every 1/eval_points of the scale-1 budget's tokens.
        warmup: learning-rate warm-up as a fraction of each phase.
    """

    steps: Count = 1000
    scale: Annotated[float, Range(0, 1e6, lo_open=True)] = 1.0
    recovery: Fraction = 0.25
    ramp_start: Annotated[float, Range(0, 1)] = 0.25
    mask_updates: Count = 50
    tracking_points: Count = 100
    eval_points: Count = 8
    warmup: Fraction = 0.067

    def __post_init__(self):
        check_arguments(BudgetSettings, vars(self), at="budget")


@dataclass(frozen=True)
class RunSettings:
    """The top-level keys of conf/train.yaml (each one is commented there).

    Attributes:
        prune_rate: the paper's PruneRate, a multiple of the std (not a fraction).
        target_sparsity: prune exactly this fraction instead (None: use prune_rate).
        max_sparsity: a tensor pruned beyond this warns; a larger target_sparsity is refused.
        seed: seeds init, batches and random pruning.
        device: auto, cpu, cuda or cuda:N.
        precision: fp32, or bf16 autocast.
        threads: torch CPU threads (None: torch's default).
        progress: progress bars: auto (only on a terminal), true or false.
        output_dir: the run folder (None: Hydra's).
        resume: a run folder to continue from its last checkpoint.
        trajectories, checkpoint, dense_cache, budget: the nested blocks.
    """

    GROUPS: ClassVar[tuple[str, ...]] = (
        "model", "dataset", "pruner", "schedule", "recovery", "zeroshot", "logger", "export", "energy",
        "distributed"
    )

    prune_rate: Annotated[float, Range(0, 100, why="above 100 std no weight of a real tensor survives; "
                                                   "use target_sparsity for an exact fraction")] = 0.6
    target_sparsity: Fraction | None = None
    max_sparsity: Annotated[float, Range(0, 1)] = 0.99
    seed: Seed = 1337
    device: Annotated[str, Device(auto=True)] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    threads: Annotated[int, Range(1, 4096, why="null lets torch choose")] | None = None
    progress: Literal["auto", True, False] = "auto"
    output_dir: str | None = None
    resume: str | None = None
    trajectories: TrajectorySettings = field(default_factory=TrajectorySettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    dense_cache: DenseCacheSettings = field(default_factory=DenseCacheSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)

    def __post_init__(self):
        check_arguments(RunSettings, vars(self))

    @classmethod
    def check_options(cls, given: Options) -> None:
        if given.target_sparsity is not None and given.target_sparsity > given.max_sparsity:
            raise ConfigError(
                f"target_sparsity must be <= max_sparsity ({given.max_sparsity}), since pruning more than that "
                f"empties whole tensors; got {given.target_sparsity!r} (set max_sparsity=1.0 to allow it)"
            )
