"""From a composed config to a finished run folder: check, open the folder, build the parts,
run the stages, write the results. The only place (with `swp.cli`) that instantiates.

`launch(cfg, context)` is what `swp.cli.run` calls; Hydra's runtime state reaches it as the
plain `Context`, so nothing here asks Hydra anything.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from swp import preflight
from swp.analysis.trajectories import TrajectoryRecorder
from swp.distributed import env as dist_env
from swp.distributed.state import AgreedStopRequest, for_ranks
from swp.distributed.strategy import NoDistributed
from swp.errors import ConfigError, RunError, RunInterrupted
from swp.infra import run_folder, runtime
from swp.infra.dense_cache import DenseCache, dense_key_material, tracking_spec
from swp.infra.signals import StopRequest
from swp.logging.base import JsonlLogger, Logger, LoggerGroup
from swp.logging.resilient import start_backend
from swp.pruning.nm import nm_label
from swp.recovery.plain import PlainRecovery
from swp.results import assemble, summary_line
from swp.run import Run
from swp.training.loop import NonFiniteLossError, Placement
from swp.validation import validate_config
from swp.zeroshot.none import NoZeroShot

GROUPS = ("model", "dataset", "pruner", "schedule", "recovery", "zeroshot", "recipe", "experiment")


@dataclass(frozen=True)
class Context:
    """What the launcher (Hydra) decided for this job.

    Attributes:
        default_dir: the run folder when the config gives neither output_dir nor resume.
        choices: the option chosen per config group (``pruner: swp``), recorded with results.
    """

    default_dir: str | None = None
    choices: dict = field(default_factory=dict)


@dataclass
class Settings:
    """The run-level values, checked once before anything is built or written."""

    prune_rate: float
    target: float | None
    device: object
    autocast: object
    checkpoint: dict


def check(cfg: DictConfig) -> Settings:
    """Everything that can be wrong with the input, found before anything is built or written:
    every value of every group by its constructor's signature, and the run-level settings
    (`swp.validation`); then the device this machine can give."""
    run = validate_config(cfg)
    device = runtime.resolve_device(run.device)
    target = None if run.target_sparsity is None else float(run.target_sparsity)  # prune_rate=2 is recorded as 2.0
    return Settings(float(run.prune_rate), target, device, runtime.autocast_factory(run.precision, device),
                    asdict(run.checkpoint))


def launch(cfg: DictConfig, context: Context) -> dict:
    """Builds every part from the config, runs the schedule, writes the run folder.

    Under torchrun (`distributed=ddp|fsdp`) every rank runs this; rank 0 alone writes the run
    folder, metrics and W&B (docs/distributed.md).

    Returns the results dict (also written to results.json) so tests and sweepers can use it.
    """
    job = Job(cfg, context)
    try:
        with job:
            return job.run()
    except Exception as exc:
        if job.strategy.world_size > 1 and dist_env.is_collective_failure(exc):
            raise dist_env.as_rank_failure(exc) from None
        raise


class Job:
    """One run, from a composed config to a finished run folder: the composition root.

    As a context manager it owns what a run holds open, opened in this order and closed in
    the reverse one whatever happens: the process group (`distributed` strategy), the run
    folder's lock (rank 0), and, once the run starts writing, the logger and the energy meter.
    A failure while closing never hides the failure that ended the run (it is printed as one
    line instead); after a stop signal the process group is left by `swp.cli.main`, once every
    rank has reported where it stopped (`dist_env.leave_together`).

    Args:
        cfg: the composed config (`python train.py` or `swp.config.compose_run_config`).
        context: what the launcher (Hydra) decided: the default run folder and the choices.
    """

    def __init__(self, cfg: DictConfig, context: Context):
        self.cfg, self.context = cfg, context
        self.settings = check(cfg)
        self.strategy = build("distributed", cfg.distributed) if cfg.get("distributed") else NoDistributed()
        if self.settings.checkpoint["sharded"] and not self.strategy.shards_parameters:
            raise ConfigError(f"checkpoint.sharded=true needs distributed=fsdp (under distributed={self.strategy.kind} "
                              "every rank holds the whole model: the gathered checkpoint is no larger)")
        self._closers: list[tuple[str, Callable[[BaseException | None], None]]] = []  # in opening order
        self.out_dir: Path | None = None

    # ---- what the job holds open ----------------------------------------------------------
    def __enter__(self) -> Job:
        self.settings.device = self.strategy.setup(self.settings.device)  # one device per rank
        self._closers.append(("the process group", self._leave_group))
        try:
            self.out_dir = self._folder()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        while self._closers:
            what, close = self._closers.pop()
            try:
                close(exc)
            except Exception as cleanup_error:
                if exc is None:
                    raise
                print(f"warning: closing {what} failed too: {cleanup_error}", file=sys.stderr, flush=True)

    def _leave_group(self, exc: BaseException | None) -> None:
        # After a stop every rank stopped at the same step; `swp.cli.main` leaves the group once
        # each has reported the stop (a rank that exits first makes torchrun kill the others).
        if not (isinstance(exc, RunInterrupted) and self.strategy.world_size > 1):
            self.strategy.teardown()

    def _folder(self) -> Path:
        """Picks the run folder (the same on every rank) and locks it on rank 0; a second run on
        it stops here with one line."""
        cfg = self.cfg
        given = cfg.output_dir or cfg.get("resume")
        out_dir = run_folder.choose(cfg.output_dir, cfg.get("resume"), None if given else self.context.default_dir)
        out_dir = Path(dist_env.broadcast_object(str(out_dir)))  # Hydra's timestamped folder may differ per rank
        if self.strategy.is_main:
            held = run_folder.lock(out_dir)
            held.__enter__()
            self._closers.append(("the run folder's lock", lambda exc: held.__exit__(None, None, None)))
        dist_env.barrier()  # the others start once rank 0 holds it
        return out_dir

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> dict:
        """Opens the folder (finished, resumable or new), builds the parts, runs, writes."""
        cfg, ck, out_dir = self.cfg, self.settings.checkpoint, self.out_dir
        resolved = OmegaConf.to_container(cfg, resolve=True)
        with dist_env.main_first():
            store, resume, finished = run_folder.open_run(out_dir, resolved, ck["every"], ck["keep"], cfg.get("resume"))
        if finished is not None:  # e.g. a re-launched sweep: finished jobs are not trained again
            if self.strategy.is_main:
                print(f"already finished with this config: {out_dir / 'results.json'}")
            return finished
        store, resume = for_ranks(store, resume, ck["sharded"])
        runtime.set_threads(cfg.get("threads"))
        runtime.seed_everything(cfg.seed)
        parts = build_parts(cfg, self.settings, self.strategy)
        # Against what the run will have, before anything is written.
        preflight.check(parts, self.settings.device, self.strategy)
        logger, meter = self._start_outputs(resolved, resume)
        try:
            results = self._execute(parts, store if ck["enabled"] else None, resume, logger, meter, resolved)
        except NonFiniteLossError as exc:
            last = store.paths()[-1] if store.paths() else "none"
            raise NonFiniteLossError(f"{exc}; last good checkpoint: {last}") from None
        except OSError as exc:  # e.g. a full disk while writing the final artifacts
            raise RunError(f"could not write in {out_dir}: {exc.strerror or exc}; free disk space, then re-run the "
                           "same command to resume") from exc
        self._close_outputs()
        if not ck["keep_after_success"]:
            store.clear()  # the run folder now holds the final weights, masks and importance
        if self.strategy.is_main:
            print(summary_line(results, out_dir))
        return results

    def _start_outputs(self, resolved: dict, resume) -> tuple[Logger, object]:
        """config.yaml, the metrics file, the logger and the energy meter (rank 0; the other
        ranks log nothing), each closed by the job however the run ends."""
        cfg, out_dir = self.cfg, self.out_dir
        if not self.strategy.is_main:
            return Logger(), None
        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
        run_folder.prepare_metrics(out_dir / "metrics.jsonl", resume)
        logged_config = resolved | {f"{g}_choice": self.context.choices.get(g) for g in GROUPS}
        # W&B trouble must never stop training: a failing backend is dropped, metrics.jsonl goes on.
        backend = start_backend(lambda: build("logger", cfg.logger)(config=logged_config, out_dir=str(out_dir)),
                                "logger")
        logger = LoggerGroup(JsonlLogger(out_dir / "metrics.jsonl"), backend)
        self._closers.append(("the logger", lambda exc: logger.finish(exc is None)))
        meter = build("energy", cfg.energy)(out_dir=str(out_dir)) if cfg.get("energy") else None
        if meter is not None:
            self._closers.append(("the energy meter", lambda exc: meter.close()))
        return logger, meter

    def _close_outputs(self) -> None:
        """Closes the meter, then the logger, of a finished run (before its summary line)."""
        while self._closers and self._closers[-1][0] in ("the energy meter", "the logger"):
            what, close = self._closers.pop()
            try:
                close(None)
            except OSError as exc:
                raise RunError(f"could not close {what} in {self.out_dir}: {exc.strerror or exc}") from exc


    def _execute(self, parts: Parts, store, resume, logger: Logger, meter, resolved: dict) -> dict:
        """Runs the stages under the stop-signal handlers, then exports and writes the outputs."""
        cfg, settings, strategy = self.cfg, self.settings, self.strategy
        many = strategy.world_size > 1
        where = Placement(settings.device, settings.autocast, logger,
                          _progress_enabled(cfg.progress) and strategy.is_main,
                          reduce_sum=strategy.reduce_sum, from_main=strategy.from_main, rewrap=strategy.wrap)
        # Ranks agree on a stop request, so they all stop after the same step with one checkpoint.
        with AgreedStopRequest() if many else StopRequest() as stop:
            run = Run(model=parts.model, task=parts.task, pruner=parts.pruner, schedule=parts.schedule, where=where,
                      prune_rate=settings.prune_rate, target_sparsity=settings.target, seed=cfg.seed,
                      checkpoints=store,
                      # The shared dense cache is one process's (its entries are not gathered yet).
                      dense_cache=None if many else dense_cache(cfg, resolved, parts, settings.device, self.out_dir),
                      stop=stop, recorder=parts.recorder, meter=meter, max_sparsity=cfg.max_sparsity,
                      recovery=parts.recovery, zeroshot=parts.zeroshot)
            if resume is not None:
                run.restore_checkpoint(resume)
            figures, _ = run.execute()
        # Export first (it may reload and re-evaluate the model), then the run folder's files.
        with run.clock.time("export"):
            exported = parts.export(model=parts.model, task=parts.task, pruned=parts.pruner.params,
                                    out_dir=self.out_dir, device=settings.device, autocast=settings.autocast)
        figures |= run.timing()  # wall_s and stage_seconds now cover the export too
        results = assemble(self._identity(parts), figures, headline_metric=parts.task.metrics[0],
                           lower_is_better=parts.task.lower_is_better,
                           extras=(parts.recovery.results(), meter.results() if meter else {},
                                   parts.task.extra_results(), exported, strategy.results(),
                                   parts.zeroshot.info()))
        run.write_outputs(self.out_dir, results, show=cfg.trajectories.show)  # every rank (gathers); rank 0 writes
        return results

    def _identity(self, parts: Parts) -> dict:
        """What results.json says this run was: the chosen options and the values that shape it."""
        settings, choices = self.settings, self.context.choices
        return {g: choices.get(g) for g in ("pruner", "model", "dataset", "schedule", "recovery", "recipe")} | {
            "prune_rate": settings.prune_rate, "target_sparsity": settings.target, "seed": self.cfg.seed,
            "device": str(settings.device), "precision": self.cfg.precision, "nm": nm_label(parts.pruner.nm),
            "allocation": parts.pruner.allocation}


@dataclass
class Parts:
    """The built method parts of one run."""

    task: object
    model: object
    pruner: object
    schedule: object
    export: object
    recorder: TrajectoryRecorder | None
    recovery: object
    zeroshot: object


def build_parts(cfg: DictConfig, settings: Settings, strategy=None) -> Parts:
    """Instantiates the groups in a fixed order (the seeded RNG is consumed in this order).

    `strategy` (the `distributed` group) splits the task's batch over the ranks and wraps or
    shards the model before the pruner selects its parameters (FSDP2 replaces them by DTensors).
    """
    strategy = strategy or NoDistributed()
    task = strategy.split(build("dataset", cfg.dataset))
    zeroshot = build("zeroshot", cfg.zeroshot) if cfg.get("zeroshot") else NoZeroShot()
    # Refusals and the tasks' data before the model is loaded (a 7B model takes minutes).
    zeroshot.prepare(getattr(task, "tokenizer", None), strategy.world_size)
    model = build("model", cfg.model, **task.model_kwargs()).to(settings.device)
    zeroshot.check_model(model)
    strategy.wrap(model)
    pruner = build("pruner", cfg.pruner)(model=model)
    if strategy.world_size > 1:
        strategy.check_pruner(type(pruner).__name__, pruner.capabilities)
    pruner.check_target(settings.target)
    schedule, export = build("schedule", cfg.schedule), build("export", cfg.export)
    recovery = build("recovery", cfg.recovery) if cfg.get("recovery") else PlainRecovery()
    recovery.check(task=task, model=model, pruned=pruner.params, finetune_steps=schedule.finetune_steps,
                   prunes_in_dense=pruner.capabilities.first_dense_prune is not None,
                   shards_parameters=strategy.shards_parameters)
    # A fixed sample of weights recorded at every tracking point (paper Figs. 1-2), any pruner.
    per_tensor = cfg.trajectories.per_tensor
    # (Off under FSDP2: the recorder indexes whole tensors; docs/distributed.md.)
    record = per_tensor and not strategy.shards_parameters
    recorder = TrajectoryRecorder(pruner.params, per_tensor, cfg.seed) if record else None
    return Parts(task, model, pruner, schedule, export, recorder, recovery, zeroshot)


def dense_cache(cfg: DictConfig, resolved: dict, parts: Parts, device, out_dir: Path) -> DenseCache | None:
    """The shared dense-stage cache for this run, keyed by what its dense stage depends on."""
    settings = cfg.get("dense_cache")
    if not settings or not settings.get("enabled", False):
        return None
    per_tensor = cfg.trajectories.per_tensor  # the entry carries the recorded histories
    dense_prunes = parts.pruner.capabilities.first_dense_prune is not None
    sample = {"per_tensor": per_tensor, "tensors": {n: list(p.shape) for n, p in parts.pruner.params.items()}}
    material = dense_key_material(
        model=resolved["model"], dataset=resolved["dataset"], schedule=parts.schedule, seed=cfg.seed,
        precision=cfg.precision, device=device, threads=cfg.get("threads"), trajectories=sample if per_tensor else None,
        # GMP prunes during the dense stage: its weights depend on every pruner option, and on
        # the recovery's when it distils there (swp.recovery.distill).
        pruner=resolved["pruner"] if parts.pruner.capabilities.modifies_dense else None,
        recovery=resolved.get("recovery") if parts.recovery.distills and dense_prunes else None,
    )
    return DenseCache(Path(settings.dir), material, tracking_spec(resolved["pruner"], parts.pruner.capabilities),
                      out_dir / "metrics.jsonl")


def build(group: str, node, **kwargs):
    """hydra.utils.instantiate for one config group; a bad value becomes a one-line ConfigError.

    Hydra wraps errors raised inside a `_target_` in InstantiationException (nested targets
    wrap them again), so the cause chain is searched for our ConfigError; a ValueError or
    TypeError from a part's constructor (e.g. a model that does not fit the dataset) is
    reported with the group's name.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"{group}: {cause}") from None
        raise


def _progress_enabled(setting) -> bool:
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)
