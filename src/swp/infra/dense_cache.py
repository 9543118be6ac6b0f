"""Train once, prune many: the dense phase of a sweep stored once and reused by every job.

An entry is the state right before pruning (dense weights, optimizer state, the pruner's
tracked state, RNG states, the dense evaluation and the dense phase's metric lines), in the
checkpoint format, under ``<cache>/<dense key>/<tracking key>/``:

- the dense key hashes exactly what determines the dense stage and every file it writes:
  model, dataset, the schedule's dense fields (`Schedule.dense_settings`, which includes the
  logging and evaluation cadence, since a hit replays the stage's metric lines), seed,
  precision, device type (and CPU threads, which change float sums), the trajectory sample
  (the tensors it follows), the torch version and the source code of the `swp` package;
- the tracking key hashes the pruner's options except those it declares as used only after
  tracking (`Capabilities.mask_options`); pruners that track nothing use ``untracked``. A new
  option is part of the key unless declared otherwise, so it can cost a miss, never a stale hit.

Observing the weights never changes them, so a pruner that tracks nothing may reuse any entry
with its dense key (it ignores the tracked state); a tracking pruner needs its exact entry.
A job that finds no entry takes a file lock, looks again, trains, and publishes atomically;
concurrent jobs wait on the lock instead of training the same phase twice. A damaged or
partial entry fails its manifest check, is reported and rebuilt, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn

from swp.errors import CheckpointError, RunError
from swp.infra.checkpoint import Checkpoint, read_checkpoint, write_checkpoint

if TYPE_CHECKING:  # annotations only: infra never imports the logging or training layers
    from swp.logging.base import Logger
    from swp.training.schedule import Schedule

METRICS = "metrics.jsonl"


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def source_digest() -> str:
    """Hash of the swp package's source, so an edit to the code never reuses a stale entry."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def dense_key_material(*, model: dict, dataset: dict, schedule: Schedule, seed: int, precision: str,
                       device: torch.device, threads: int | None, trajectories: dict | None = None,
                       pruner: dict | None = None, recovery: dict | None = None) -> dict:
    """Everything the dense stage's files depend on, as plain data (the key is its hash).

    Args:
        trajectories: the recorded sample (``per_tensor`` and the tensors' names and shapes),
            None when no trajectories are recorded.
        pruner: the config of a pruner that changes the dense weights itself (GMP), else None.
        recovery: the config of a recovery that acts in such a dense phase (distillation), else
            None (and left out of the material, so every other key is as before).
    """
    material = {
        "model": model, "dataset": dataset, "seed": seed, "precision": precision, "device": device.type,
        "schedule": schedule.dense_settings(), "threads": threads if device.type == "cpu" else None,
        "trajectories": trajectories, "pruner": pruner, "torch": torch.__version__, "code": source_digest(),
    }
    return material | ({"recovery": recovery} if recovery is not None else {})


def tracking_spec(pruner_config: dict, capabilities) -> dict | None:
    """What a pruner records during the dense stage; None for a pruner that records nothing.

    Args:
        pruner_config: the pruner's resolved config (its ``_target_`` names the class).
        capabilities: the built pruner's (`swp.pruners.capabilities.Capabilities`): whether it
            tracks, and which options only shape masks.
    """
    if not capabilities.tracks:
        return None
    return {k: v for k, v in pruner_config.items() if k != "_partial_" and k not in capabilities.mask_options}


class DenseCache:
    """One run's view of the shared cache (its keys, the lock, lookup and publish).

    Args:
        root: the cache folder shared by all jobs of a sweep.
        material: `dense_key_material(...)`.
        tracking: `tracking_spec(...)`.
        metrics_path: the run's metrics.jsonl (the dense phase's lines are stored and replayed).
    """

    def __init__(self, root: Path, material: dict, tracking: dict | None, metrics_path: Path | None = None):
        self.root = Path(root)
        self.material, self.tracking = material, tracking
        self.folder = self.root / _digest(material)[:32]
        self.entry_path = self.folder / ("untracked" if tracking is None else "track-" + _digest(tracking)[:16])
        self.metrics_path = metrics_path

    def _find(self) -> Checkpoint | None:
        candidates = [self.entry_path]
        if self.tracking is None and self.folder.is_dir():  # tracked state is simply ignored
            candidates += sorted(
                p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p != self.entry_path
            )
        for path in candidates:
            if not path.is_dir():
                continue
            try:
                return read_checkpoint(path)
            except CheckpointError as exc:
                print(f"warning: dense cache entry is damaged, not used: {exc}", file=sys.stderr)
        return None

    @contextmanager
    def reserve(self) -> Iterator["CacheEntry"]:
        """Yields the entry: `hit` holds a verified entry, or None and the caller trains the dense
        phase and calls `publish`. While the caller trains, the lock keeps other jobs waiting."""
        found = self._find()
        if found is not None:
            yield CacheEntry(self, found)
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = open(self.entry_path.with_name(self.entry_path.name + ".lock"), "a+")
        except OSError as exc:
            raise RunError(
                f"dense cache folder {self.root} is not writable ({exc.strerror}); set dense_cache.dir "
                "or dense_cache.enabled=false"
            ) from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another job that is training this dense phase ({self.entry_path})", file=sys.stderr)
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found = self._find()
                if found is None and self.entry_path.exists():
                    shutil.rmtree(self.entry_path, ignore_errors=True)  # damaged: rebuilt below
                yield CacheEntry(self, found)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class CacheEntry:
    """A reserved cache slot: a verified entry (`hit`) or the promise to publish one."""

    def __init__(self, cache: DenseCache, hit: Checkpoint | None):
        self.cache, self.hit = cache, hit

    def publish(self, model: nn.Module, state: dict) -> None:
        """Stores the dense state; a failure only costs the reuse, never the run."""
        extra = {
            "key.json": json.dumps(
                {"dense": self.cache.material, "tracking": self.cache.tracking}, indent=1, default=str
            ).encode()
        }
        if self.cache.metrics_path is not None and self.cache.metrics_path.exists():
            extra[METRICS] = self.cache.metrics_path.read_bytes()
        try:
            write_checkpoint(self.cache.entry_path, model, state, self.cache.material, extra)
        except RunError as exc:
            print(f"warning: dense cache entry not stored ({exc})", file=sys.stderr)

    def replay_metrics(self, logger: Logger) -> None:
        """Logs the cached dense phase's metric lines again, so this run's curves are complete."""
        path = self.hit.path / METRICS if self.hit is not None else None
        if path is None or not path.is_file():
            return
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "step" in record:
                step = record.pop("step")
                logger.log(record, step=step)
