"""One run of the method, stage by stage: dense training with tracking -> prune -> masked
fine-tuning -> final evaluation. `Run` takes plain built objects; `swp.launch` builds them.

A run can stop anywhere and continue exactly: a checkpoint is written every
`checkpoints.every` steps and at each stage boundary (after dense training, right after
pruning, after fine-tuning), and a run restored from a checkpoint skips the stages it holds.
The dense stage can also come from a shared cache, since it is identical for every point of a
compression sweep; a hit leaves the run exactly as if it had trained the stage itself.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from swp.analysis.trajectory_report import publish_trajectories
from swp.distributed.env import is_main
from swp.distributed.state import full_model, full_state, shard_optimizer_state
from swp.energy.meter import NullMeter
from swp.errors import CheckpointError
from swp.infra.checkpoint import Checkpoint, CheckpointStore
from swp.infra.dense_cache import DenseCache
from swp.infra.io import save_model_weights, save_tensors, unique_parameters, write_json_atomic
from swp.infra.rng import capture_rng, restore_rng
from swp.infra.signals import StopRequest
from swp.interfaces import Meter, Recorder, Task
from swp.pruners.base import Pruner
from swp.pruners.capabilities import Calibration
from swp.pruners.guardrails import warn_overpruned
from swp.pruning.masks import MaskSet
from swp.recovery.base import Recovery
from swp.recovery.plain import PlainRecovery
from swp.results import scalars
from swp.stages import Stage, StageClock
from swp.training.guard import check_sparsity
from swp.training.loop import NonFiniteLossError, PhaseSpec, Placement, evaluate, make_optimizer, train_phase
from swp.training.report import allocation_metrics, sparsity_metrics, sparsity_report
from swp.training.schedule import Schedule
from swp.zeroshot.none import NoZeroShot


@dataclass
class Progress:
    """What the run has measured so far; every checkpoint and dense-cache entry carries it.

    Attributes:
        rate: the prune_rate used (the given one, or the one found for target_sparsity; None
            where the masks prune by rank at the target and no rate decides them).
        thresholds: per-tensor Eq. 2 thresholds of the masks.
        mask_sparsity: pruned fraction recorded when the masks were made (the guard's reference).
        dense_cache: ``off``, ``miss`` (trained and published) or ``hit`` (taken from the cache).
        initial, dense, pruned: validation metrics before training, after it, after pruning.
        dense_stats, ft_stats: throughput of the dense and fine-tuning phases.
        allocation: what the pruner said about its allocation when it pruned
            (`Pruner.allocation_facts`: OWL's block sparsities), kept for results.json.
        calibration_tokens: tokens the pruner's calibration saw (recorded here, not read back
            from the pruner, so a run resumed after pruning reports what the pruning saw).
        pruned_zeroshot: zero-shot scores right after pruning (``zeroshot.after_pruning``).
        stage_seconds, stage_cpu_seconds: wall and CPU seconds per stage so far (`StageClock`; a
            resumed run keeps those of the stages it finished before the interruption).
        curve: every validation evaluation with the run's training tokens at that moment:
            ``{"tokens", "stage", "val_<m>"...}`` (stage: ``initial``, ``train``, ``dense``,
            ``pruned``, ``finetune``, ``final``), results.json's ``curve``.
    """

    rate: float | None
    thresholds: dict[str, float] = field(default_factory=dict)
    mask_sparsity: float = 0.0
    dense_cache: str = "off"
    initial: dict[str, float] | None = None
    dense: dict[str, float] | None = None
    pruned: dict[str, float] | None = None
    dense_stats: dict[str, float] = field(default_factory=lambda: {"tokens_per_s": 0.0})
    ft_stats: dict[str, float] = field(default_factory=lambda: {"tokens_per_s": 0.0})
    allocation: dict = field(default_factory=dict)
    calibration_tokens: int = 0
    pruned_zeroshot: dict[str, float] | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)

    # What a dense-cache entry hands to the run that takes it.
    DENSE_FIELDS = ("initial", "dense", "dense_stats", "curve")

    def add_point(self, tokens: int, stage: str, metrics: dict[str, float]) -> None:
        self.curve.append({"tokens": tokens, "stage": stage} | {f"val_{k}": v for k, v in metrics.items()})

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def _class_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class Run:
    """The method on one model: `execute()` runs the stages still pending and returns
    ``(figures, masks)``; `write_outputs` leaves the finished run's files (see `swp.launch`).

    Args:
        model, task, pruner, schedule: the method's parts.
        where: device, autocast, logger and progress bars.
        prune_rate: Eq. 2's PruneRate; target_sparsity: if set, the rate is searched for it.
        seed: seeds the dense batches (the fine-tune uses seed + 1).
        checkpoints: where and how often to checkpoint (None: never).
        dense_cache: the shared dense-stage cache (None: always train it).
        stop: set by SIGTERM/SIGINT; the run stops at the next step end with a checkpoint.
        recorder: trajectory recorder (Figs. 1-2), called at every tracking point.
        meter: energy meter told where each stage begins.
        max_sparsity: a tensor pruned beyond this fraction is warned about (1.0: never).
        recovery: how the pruned model recovers in the fine-tune (`swp.recovery`; plain: the
            task's loss). Its teacher is taken right before the first weight is pruned.
        zeroshot: the lm-eval scorer (`swp.zeroshot`), run after the final evaluation (and after
            pruning if it asks); None or one with no tasks: no zero-shot stage.
    """

    def __init__(self, *, model: nn.Module, task: Task, pruner: Pruner, schedule: Schedule, where: Placement,
                 prune_rate: float, target_sparsity: float | None, seed: int,
                 checkpoints: CheckpointStore | None = None, dense_cache: DenseCache | None = None,
                 stop: StopRequest | None = None, recorder: Recorder | None = None, meter: Meter | None = None,
                 max_sparsity: float = 1.0, recovery: Recovery | None = None, zeroshot=None):
        self.model, self.task, self.pruner, self.schedule, self.where = model, task, pruner, schedule, where
        self.target_sparsity, self.seed = target_sparsity, seed
        self.checkpoints, self.dense_cache, self.stop = checkpoints, dense_cache, stop
        self.recorder, self.meter = recorder, meter or NullMeter()
        self.max_sparsity = max_sparsity
        self.recovery = recovery or PlainRecovery()
        self.zeroshot = zeroshot if zeroshot is not None else NoZeroShot()
        self.progress = Progress(rate=prune_rate)
        self.clock = StageClock(self.progress.stage_seconds, self.progress.stage_cpu_seconds)
        self.zeroshot_scores: dict[str, float] = {}
        self._started: float | None = None
        self.masks: MaskSet | None = None
        self.reached: Stage | None = None  # the stage a restored checkpoint holds
        self.resumed: Checkpoint | None = None

    # ---- the stages ---------------------------------------------------------------------
    def execute(self) -> tuple[dict, MaskSet | None]:
        """Runs every pending stage; returns the run's figures for results.json and the masks."""
        self._started = time.perf_counter()
        if self._pending(Stage.DENSE):
            self.train_dense()
        if self._pending(Stage.PRUNED):
            self.prune()
        if self._pending(Stage.FINETUNED) and self.schedule.finetune_steps > 0:
            self.finetune()
        elif self.schedule.finetune_steps == 0:
            self.recovery.finish(self.model, self.masks)  # e.g. GMP's dense-phase teacher is released
        final = self.evaluate_final()
        return self.figures(final), self.masks

    def train_dense(self) -> None:
        """Stage 1: dense training; the pruner observes the weights at every tracking point.
        A fresh run may instead take the identical stage from the shared cache."""
        use_cache = self.dense_cache is not None and self.resumed is None
        with self.dense_cache.reserve() if use_cache else contextlib.nullcontext() as entry:
            if entry is not None and entry.hit is not None:
                with self.clock.time("dense_cache"):
                    self._take_cached_dense(entry)
                if self.stop is not None and self.stop.requested:  # otherwise the entry is the checkpoint
                    self.save_checkpoint(Stage.DENSE, "after dense training", self.schedule.train_steps,
                                         entry.hit.state["optimizer"], entry.hit.state["generator"])
                return
            dense_state = self._train_dense_phase()
            if entry is not None:
                self.progress.dense_cache = "miss"
                with self.clock.time("dense_cache"):
                    entry.publish(self.model, dense_state | {"record": self.progress.state_dict()})
        self.save_checkpoint(Stage.DENSE, "after dense training", self.schedule.train_steps,
                             dense_state["optimizer"], dense_state["generator"])

    def prune(self) -> None:
        """Stage 2: prune once, by Eq. 2 at prune_rate (or the rate that gives target_sparsity)."""
        p, T = self.progress, self.schedule.train_steps
        self._meter_begin("prune")
        self.recovery.take_teacher(self.model)  # the dense model (kept from GMP's first update, if taken then)
        caps = self.pruner.capabilities
        if caps.calibrates:
            with self.clock.time("calibration"):
                self._calibrate(caps.calibration)
        if caps.prunes:
            with self.clock.time("pruning"):
                self._make_masks(caps.calibrates)
        if caps.calibrates:  # SparseGPT counts them while it prunes, in masks()
            p.calibration_tokens = int(self.pruner.calibration_tokens)
        check_sparsity(self.masks, "after pruning", p.mask_sparsity)
        p.pruned = self._evaluate("pruned", T)
        if self.zeroshot.after_pruning:
            p.pruned_zeroshot = self._zeroshot("pruned", T)
        self.where.logger.log(sparsity_metrics(self.model, self.pruner.params, p.thresholds)
                              | allocation_metrics(p.allocation), step=T)
        self.save_checkpoint(Stage.PRUNED, "right after pruning", T)

    def _make_masks(self, calibrated: bool) -> None:
        """The rate (searched for target_sparsity), the pruner's masks, applied to the weights.
        Sequential pruners (SparseGPT, Wanda's block-by-block pass) run their calibration
        forwards here, block by block, so their time counts as pruning."""
        p = self.progress
        if self.target_sparsity is not None:
            p.rate = self.pruner.rate_for_sparsity(self.target_sparsity)
        keep, p.thresholds = self.pruner.masks(p.rate)
        if calibrated:  # reduced floats may round apart: every DDP replica takes rank 0's
            for name in keep:  # assigned back: packed masks are read as new tensors
                keep[name] = self.where.from_main(keep[name])
                self.where.from_main(self.pruner.params[name].data)
        self.masks = MaskSet(self.pruner.params, keep)
        warn_overpruned(self.masks.keep, self.max_sparsity)
        self.masks.apply()  # the dense optimizer is gone; fine-tuning starts a fresh one
        p.mask_sparsity = self.masks.sparsity()
        p.allocation = self.pruner.allocation_facts()

    def finetune(self) -> None:
        """Stage 3: fine-tune with the masks enforced after every optimizer step."""
        T, F = self.schedule.train_steps, self.schedule.finetune_steps
        with self.clock.time("recovery"):  # the optimizer's construction too (its first costs seconds)
            self._finetune_phase()
        check_sparsity(self.masks, "after fine-tuning", self.progress.mask_sparsity)
        self.save_checkpoint(Stage.FINETUNED, "after fine-tuning", T + F)

    def _finetune_phase(self) -> None:
        s, T, F = self.schedule, self.schedule.train_steps, self.schedule.finetune_steps
        self._meter_begin("finetune")
        if self.reached != Stage.FINETUNE:  # a run resumed inside the fine-tune has them from `restore`
            self.recovery.attach(self.model, self.masks, self.pruner.params)
            self._rewrap()
        optimizer = self._optimizer(s.finetune_lr)
        generator = torch.Generator().manual_seed(self.seed + 1)
        start = self._restore_phase(Stage.FINETUNE, optimizer, generator)
        spec = self._spec("finetune", F, s.finetune_lr_at, offset=T)
        hook = self._checkpoint_hook(Stage.FINETUNE, spec, optimizer, generator)
        with _closing(self.recovery.objective(self.task, self.model, self.where.reduce_sum)) as objective:
            self.progress.ft_stats = train_phase(self.model, self.task, optimizer, generator, spec, self.where,
                                                 start_step=start, masks=self.masks, after_step=hook,
                                                 objective=objective, on_eval=self._on_eval(spec.name))
        del optimizer
        self.recovery.finish(self.model, self.masks)

    def evaluate_final(self) -> dict[str, float]:
        """Stage 4: the final evaluation, the zero-shot tasks if any, and the last sparsity check."""
        step = self.schedule.train_steps + self.schedule.finetune_steps
        final = self._evaluate("final", step)
        self.zeroshot_scores = self._zeroshot("final", step) or {}
        with self.clock.time("energy_meter"):
            self.meter.end()
        check_sparsity(self.masks, "at the end", self.progress.mask_sparsity)
        return final

    def timing(self) -> dict:
        """``wall_s`` (seconds since `execute` began), ``stage_seconds`` and ``stage_cpu_seconds``;
        the launcher asks again after the export, which it times on `clock`."""
        wall = time.perf_counter() - self._started if self._started is not None else 0.0
        return {"wall_s": wall, "stage_seconds": dict(self.progress.stage_seconds),
                "stage_cpu_seconds": dict(self.progress.stage_cpu_seconds)}

    def figures(self, final: dict[str, float]) -> dict:
        """What the run measured, as the plain values `swp.results.assemble` turns into results."""
        p = self.progress
        return {
            "prune_rate_used": p.rate, "initial": p.initial or {}, "dense": p.dense, "pruned": p.pruned,
            "final": final, "sparsity": sparsity_report(self.model, self.pruner.params, self.masks, p.thresholds),
            "train_tokens_per_s": p.dense_stats["tokens_per_s"], "finetune_tokens_per_s": p.ft_stats["tokens_per_s"],
            "tracking_points": self.pruner.tracking_points, "tracked_state_bytes": self.pruner.state_bytes(),
            "model_bytes": sum(t.numel() * t.element_size() for t in unique_parameters(self.model)),
            "dense_cache": p.dense_cache, "resumed_from": self.resumed.path.name if self.resumed else None,
            "allocation_facts": p.allocation,
            "zeroshot": self.zeroshot_scores, "pruned_zeroshot": p.pruned_zeroshot or {},
            "curve": list(p.curve),
        } | self.timing() | self._calibration_facts() | self.token_accounting()

    def token_accounting(self) -> dict[str, int]:
        """Training tokens by phase: dense training (before any weight is pruned), pruning-phase
        training (between the first mask and the final masks: a gradual pruner's ramp) and
        recovery (with the final masks: the fine-tune, and the dense steps after a ramp's end);
        their total. Calibration tokens (``calibration_tokens``) are reported beside, not in it."""
        s, tps = self.schedule, self.task.tokens_per_batch
        steps = s.train_steps + s.finetune_steps
        if not self.pruner.capabilities.prunes:
            start = end = steps  # the control trains dense throughout
        else:
            start, end = self.pruner.pruning_steps(s.train_steps)
        return {"tokens_dense": start * tps, "tokens_pruning": (end - start) * tps,
                "tokens_recovery": (steps - end) * tps, "tokens_total": steps * tps}

    def _calibration_facts(self) -> dict:
        calibration = self.pruner.capabilities.calibration
        if calibration is None:
            return {"calibration_batches": 0, "calibration_seed": None, "calibration_tokens": 0}
        return {"calibration_batches": calibration.batches, "calibration_seed": calibration.seed,
                "calibration_tokens": self.progress.calibration_tokens}

    def write_outputs(self, out_dir: Path, results: dict, show: int) -> None:
        """Stage 5: every artifact of the finished run; results.json goes last, so its presence
        means the run finished and everything it names is on disk.

        Args:
            out_dir: the run folder.
            results: the assembled results (also sent to the logger's summary).
            show: weights drawn per trajectory category in Figs. 1-2.
        """
        # Under FSDP2 every rank gathers its shards (collective); rank 0 alone writes.
        model, keep = full_model(self.model), full_state(dict(self.masks.keep)) if self.masks is not None else None
        scores = full_state(self.pruner.artifacts())
        if not is_main():
            return
        save_model_weights(out_dir / "model.safetensors", model)
        if keep is not None:
            save_tensors(out_dir / "masks.safetensors", keep)
        if scores:
            save_tensors(out_dir / "importance.safetensors", scores)
        if self.recorder is not None:
            publish_trajectories(
                self.recorder.result(keep), out_dir, self.where.logger,
                show=show, seed=self.seed,
                title=f"{results.get('pruner') or 'run'}, sparsity {results['sparsity']:.1%}",
            )
        # The summary line first: writing it also finds a run folder deleted under the run
        # (`JsonlLogger`), which must fail the run before results.json says it finished.
        self.where.logger.summary(scalars(results))
        write_json_atomic(out_dir / "results.json", results)
        (out_dir / "error.json").unlink(missing_ok=True)  # left by an earlier, interrupted attempt

    # ---- checkpoints ----------------------------------------------------------------------
    def snapshot(self, stage: Stage, step: int = 0, optimizer_state=None, generator_state=None) -> dict:
        """Everything a checkpoint holds besides the weights (plain tensors and data only)."""
        return {"stage": stage.label, "step": step, "optimizer": optimizer_state, "generator": generator_state,
                "pruner": {"class": _class_name(self.pruner), "state": self.pruner.state_dict()},
                "recorder": self.recorder.state_dict() if self.recorder is not None else None,
                "masks": dict(self.masks.keep) if self.masks is not None else None,
                "mask_sparsity": self.progress.mask_sparsity, "rng": capture_rng(),
                "record": self.progress.state_dict(), "recovery": self.recovery.state_dict()}

    def save_checkpoint(self, stage: Stage, where: str, global_step: int, optimizer_state=None,
                        generator_state=None, step: int = 0) -> None:
        """Writes a checkpoint (if they are on), then honours a pending stop request."""
        path = None
        if self.checkpoints is not None:
            with self.clock.time("checkpoints"):
                _require_finite(self.model, where)
                path = self.checkpoints.save(self.model, self.snapshot(stage, step, optimizer_state, generator_state),
                                             global_step)
        if self.stop is not None and self.stop.requested:
            self.stop.stop(where, path)

    def restore_checkpoint(self, ckpt: Checkpoint) -> None:
        """Continues from a verified checkpoint of this same run: weights, tracked state, masks,
        RNG and progress; the stages it holds are skipped."""
        saved = ckpt.state["pruner"]["class"]
        if saved != _class_name(self.pruner):
            raise CheckpointError(
                f"checkpoint {ckpt.path} was written by pruner {saved}, this run uses {_class_name(self.pruner)}; "
                "resume with the same pruner or use a new output_dir"
            )
        if ckpt.state["masks"] is not None:
            self.masks = MaskSet(self.pruner.params, ckpt.state["masks"])
        stage = Stage.from_label(ckpt.stage)
        # Before the weights: a checkpoint written inside a LoRA fine-tune names the adapters.
        self.recovery.restore(stage, self.model, self.masks, self.pruner.params, ckpt.state.get("recovery"))
        if stage == Stage.FINETUNE:
            self._rewrap()
        self._load_state(ckpt, with_pruner=True)
        self.progress.load_state_dict(ckpt.state["record"])
        self.resumed, self.reached = ckpt, stage
        if self.masks is not None:
            check_sparsity(self.masks, f"on loading {ckpt.path}", ckpt.state["mask_sparsity"])

    # ---- helpers --------------------------------------------------------------------------
    def _stop_if_requested(self, where: str) -> None:
        """Stops now, between two steps of work that writes nothing, naming the newest checkpoint."""
        if self.stop is not None and self.stop.requested:
            paths = self.checkpoints.paths() if self.checkpoints is not None else []
            self.stop.stop(where, paths[-1] if paths else None)

    def _pending(self, stage: Stage) -> bool:
        return self.reached is None or self.reached < stage

    def _load_state(self, ckpt: Checkpoint, with_pruner: bool) -> None:
        ckpt.load_weights(self.model)
        if with_pruner:
            self.pruner.load_state_dict(ckpt.state["pruner"]["state"])
        saved = ckpt.state.get("recorder")
        if self.recorder is not None and saved is not None:
            self.recorder.load_state_dict(saved)
        restore_rng(ckpt.state["rng"])

    def _take_cached_dense(self, entry) -> None:
        """A cache hit: the entry's weights, tracked state, histories, RNG, metric lines and
        dense figures, exactly what training the stage would have left. A pruner that tracks
        nothing ignores the tracked state (observing never changes the weights)."""
        self._load_state(entry.hit, with_pruner=self.pruner.capabilities.tracks)
        # GMP's dense phase with distillation holds the teacher it took (the entry is keyed by both).
        self.recovery.restore(Stage.DENSE, self.model, None, self.pruner.params, entry.hit.state.get("recovery"))
        cached = entry.hit.state["record"]
        for key in Progress.DENSE_FIELDS:
            setattr(self.progress, key, cached.get(key))
        self.progress.dense_cache = "hit"
        entry.replay_metrics(self.where.logger)

    def _train_dense_phase(self) -> dict:
        s, p = self.schedule, self.progress
        if s.eval_initial and self.resumed is None:  # a pretrained model's own score (published baselines)
            with self.clock.time("eval_initial"):
                p.initial = evaluate(self.task, self.model, self.where.device, self.where.autocast,
                                     "evaluate initial", self.where.progress)
            _log_eval(self.where.logger, "initial", p.initial, 0)
            p.add_point(0, "initial", p.initial)
        with self.clock.time("dense_training"):  # the optimizer's construction too (its first costs seconds)
            optimizer = self._optimizer(s.lr)
            generator = torch.Generator().manual_seed(self.seed)
            self._meter_begin("train")
            start = self._restore_phase(Stage.TRAIN, optimizer, generator)
            spec = self._spec("train", s.train_steps, s.train_lr)
            # Distillation acts in a dense phase only where the pruner prunes during it (GMP).
            distills = self.recovery.distills and self.pruner.capabilities.first_dense_prune is not None
            objective = self.recovery.objective(self.task, self.model, self.where.reduce_sum) if distills else None
            with _closing(objective):
                p.dense_stats = train_phase(self.model, self.task, optimizer, generator, spec, self.where,
                                            start_step=start, after_step=self._dense_hook(spec, optimizer, generator),
                                            objective=objective, on_eval=self._on_eval(spec.name))
        p.dense = self._evaluate("dense", s.train_steps)
        with self.clock.time("checkpoints"):  # the state a checkpoint (or the dense cache) keeps
            return self.snapshot(Stage.DENSE, 0, optimizer.state_dict(), generator.get_state())

    def _dense_hook(self, spec: PhaseSpec, optimizer, generator):
        """After each dense step: the pruner's step hook, tracking points, then checkpoints."""
        checkpoint = self._checkpoint_hook(Stage.TRAIN, spec, optimizer, generator)

        def after_step(step: int) -> None:
            if step == self.pruner.capabilities.first_dense_prune:
                self.recovery.take_teacher(self.model)  # the model right before the first masks
            update = self.pruner.on_train_step(step, optimizer)
            if update:  # a gradual pruner's mask update (sparsity, flip rate)
                self.where.logger.log(update, step=step)
            if self.schedule.is_tracking_point(step):
                if self.pruner.capabilities.tracks:
                    self.pruner.observe()
                if self.recorder is not None:
                    self.recorder.record(step + 1)
            checkpoint(step)
        return after_step

    def _checkpoint_hook(self, stage: Stage, spec: PhaseSpec, optimizer, generator):
        """Checkpoints inside a phase when due or asked to stop (its last step is covered by the
        stage-boundary checkpoint)."""
        def after_step(step: int) -> None:
            done = step + 1
            due = self.checkpoints is not None and self.checkpoints.due(done)
            if done < spec.steps and (due or (self.stop is not None and self.stop.requested)):
                self.save_checkpoint(stage, f"at {spec.name} step {spec.step_offset + done}", spec.step_offset + done,
                                     optimizer.state_dict(), generator.get_state(), step=done)
        return after_step

    def _restore_phase(self, stage: Stage, optimizer, generator) -> int:
        """Steps already done in this phase (0 unless the run resumed inside it)."""
        if self.resumed is None or self.reached != stage:
            return 0
        optimizer.load_state_dict(shard_optimizer_state(optimizer, self.resumed.state["optimizer"]))
        generator.set_state(self.resumed.state["generator"])
        return self.resumed.step

    def _rewrap(self) -> None:
        if self.recovery.adapts:  # new trainable parameters (adapters): DDP must register them
            self.where.rewrap(self.model)

    def _optimizer(self, lr: float):
        s = self.schedule
        return make_optimizer(self.model, lr, s.weight_decay, (s.beta1, s.beta2), self.where.device.type == "cuda")

    def _spec(self, name: str, steps: int, lr_at, offset: int = 0) -> PhaseSpec:
        s = self.schedule
        return PhaseSpec(name=name, steps=steps, lr_at=lr_at, step_offset=offset, grad_clip=s.grad_clip,
                         eval_every=s.eval_every, log_every=s.log_every, eval_every_tokens=s.eval_every_tokens,
                         tokens_before=offset * self.task.tokens_per_batch)

    def _on_eval(self, phase: str):
        """Records a phase's in-phase evaluation on the token curve (checkpoints carry it)."""
        return lambda tokens, metrics: self.progress.add_point(tokens, phase, metrics)

    def _meter_begin(self, phase: str) -> None:
        # codecarbon's phase boundaries take a fraction of a second each: timed as their own stage.
        with self.clock.time("energy_meter"):
            self.meter.begin(phase)

    def _evaluate(self, stage: str, step: int) -> dict[str, float]:
        self._meter_begin("evaluate")
        with self.clock.time(f"eval_{stage}"):
            metrics = evaluate(self.task, self.model, self.where.device, self.where.autocast, f"evaluate {stage}",
                               self.where.progress)
        _log_eval(self.where.logger, stage, metrics, step)
        self.progress.add_point(step * self.task.tokens_per_batch, stage, metrics)
        return metrics

    def _zeroshot(self, stage: str, step: int) -> dict[str, float] | None:
        """The zero-shot tasks on the model as it is (None when there are none); logged as
        ``zeroshot/<task>/<metric>`` (final) or ``pruned_zeroshot/...``."""
        if not self.zeroshot.tasks:
            return None
        with self.clock.time(f"zeroshot_{stage}"):
            scores = self.zeroshot(self.model, getattr(self.task, "tokenizer", None), self.where.autocast)
        prefix = "zeroshot" if stage == "final" else f"{stage}_zeroshot"
        self.where.logger.log({f"{prefix}/{k}": v for k, v in scores.items()}, step=step)
        return scores

    def _calibrate(self, calibration: Calibration) -> None:
        """Draws the pruner's calibration batches from the training split with their own seed.
        A stop request is honoured between batches (calibration can take minutes): the run stops
        with the dense checkpoint written before it, which resumes right here."""
        generator = torch.Generator().manual_seed(calibration.seed)
        batches = []
        for _ in range(calibration.batches):
            self._stop_if_requested("while drawing calibration batches")
            batches.append(self.task.train_batch(generator, self.where.device))

        def forward(model: nn.Module, batch) -> None:
            self._stop_if_requested("during calibration")  # also between SparseGPT's and Wanda's blocks
            with torch.no_grad(), self.where.autocast():
                self.task.loss(model, batch)

        was_training = self.model.training
        self.model.eval()
        self.pruner.calibrate(self.model, batches, forward, self.where.reduce_sum)
        self.model.train(was_training)


@contextlib.contextmanager
def _closing(objective):
    """Yields a phase's objective (None: the task's loss) and closes it when the phase ends."""
    try:
        yield objective
    finally:
        if objective is not None:
            objective.close()


def _require_finite(model: nn.Module, where: str) -> None:
    """A checkpoint never holds NaN/inf weights, so the last one written is always a good one."""
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise NonFiniteLossError(f"weights of {name} are not finite {where}; the checkpoint was not written")


def _log_eval(logger, stage: str, metrics: dict, step: int) -> None:
    logger.log({f"val/{k}": v for k, v in metrics.items()} | {f"{stage}/val_{k}": v for k, v in metrics.items()},
               step=step)
