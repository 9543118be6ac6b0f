"""Checkpoints: everything needed to continue a run exactly, written so that a crash, a full
disk or a bit flip never leaves a checkpoint that looks valid.

One checkpoint is a folder ``<global step>-<stage rank>-<stage>/`` holding

- ``model.safetensors``: the weights (tied weights once);
- ``state.pt``: optimizer, pruner tracked state, masks, phase and step, RNG states, the batch
  generator (the data position) and the figures measured so far; tensors and plain Python
  only, loaded with ``torch.load(weights_only=True)`` so no pickled code ever runs;
- ``config.json``: the resolved config the run was started with;
- ``manifest.json``: size and SHA-256 of each file above, written last.

A *sharded* checkpoint (``checkpoint.sharded=true`` under FSDP2, `swp.distributed.state`) holds
``shards/`` (``torch.distributed.checkpoint``: one file per rank) instead of
``model.safetensors``; its manifest says ``layout: sharded`` and covers the shard files too.

The folder is assembled under a hidden temporary name, every file is fsynced, then it is renamed
into place, so a reader sees either a whole checkpoint or none; a manifest that does not match
the files (truncation, corruption) is reported with the checkpoint's path, never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from swp.errors import CheckpointError, RunError
from swp.infra.io import FREE_DISK, WRITE_ERRORS, write_failure_reason
from swp.stages import Stage

FORMAT = 1
# A run's stages in order; a checkpoint's stage says which phase it is in (or just finished).
STAGES = tuple(stage.label for stage in Stage)
WEIGHTS, STATE, CONFIG, MANIFEST = "model.safetensors", "state.pt", "config.json", "manifest.json"


@dataclass
class Checkpoint:
    """A verified checkpoint, loaded (except the weights, which go straight into a model).

    Attributes:
        path: its folder.
        stage: one of STAGES.
        step: steps completed in the stage's phase (0 at a phase boundary).
        state: what `state.pt` holds.
        config: the resolved config of the run that wrote it.
    """

    path: Path
    stage: str
    step: int
    state: dict
    config: dict

    def load_weights(self, model: nn.Module) -> None:
        """Copies the saved weights into `model`; a model of another shape is an error."""
        try:
            missing, unexpected = load_model(model, str(self.path / WEIGHTS), strict=False)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()
            raise CheckpointError(
                f"checkpoint {self.path} does not fit this model ({_shape_message(first)}); "
                "resume with the model it was written with, or use a new output_dir"
            ) from None
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint {self.path} does not fit this model (missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]}); resume with the model it was written with"
            )


def _shape_message(lines: list[str]) -> str:
    for line in lines:
        if "size mismatch" in line:
            return line.strip().rstrip(".")
    return lines[-1].strip() if lines else "unreadable weights"


def _fsync_file(path: Path) -> None:
    """Forces a written file to disk (its own function so tests can simulate a failing write)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checkpoint(
    path: Path, model: nn.Module, state: dict, config: dict, extra_files: dict[str, bytes] | None = None
) -> Path:
    """Writes a checkpoint folder atomically (temporary folder, fsync, manifest, rename).

    Raises:
        RunError: the write failed (e.g. a full disk); the temporary folder is removed and any
            earlier checkpoint is untouched.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with cleaned_on_failure(tmp, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.is_symlink():  # planted: removed, never followed
            tmp.unlink()
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_model(model, str(tmp / WEIGHTS))
        seal_checkpoint(tmp, path, state, config, extra_files)
    return path


@contextlib.contextmanager
def cleaned_on_failure(tmp: Path, path: Path):
    """A failed write removes its temporary folder and becomes one RunError line."""
    try:
        yield
    except WRITE_ERRORS as exc:  # a full disk raises safetensors' and torch's own errors, not OSError
        shutil.rmtree(tmp, ignore_errors=True)  # the half-written folder must not keep the space
        reason = write_failure_reason(exc, path.parent)
        if reason is None:
            raise
        raise RunError(
            f"could not write checkpoint {path}: {reason}; {FREE_DISK} (earlier checkpoints are kept)"
        ) from exc


def seal_checkpoint(tmp: Path, path: Path, state: dict, config: dict, extra_files: dict[str, bytes] | None = None,
                    layout: str = "full") -> None:
    """Adds state, config and extra files to the temporary folder `tmp` (which already holds
    the weights), fsyncs every file, writes the manifest last and renames `tmp` to `path`."""
    torch.save({"format": FORMAT} | state, tmp / STATE)
    (tmp / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True))
    for name, data in (extra_files or {}).items():
        (tmp / name).write_bytes(data)
    files = {}
    for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
        _fsync_file(f)
        files[f.relative_to(tmp).as_posix()] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    manifest = {"format": FORMAT, "layout": layout, "stage": state.get("stage"), "step": state.get("step"),
                "files": files}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _fsync_file(tmp / MANIFEST)
    for folder in sorted({f.parent for f in tmp.rglob("*") if f.is_file()}, reverse=True):
        _fsync_dir(folder)
    if path.exists():  # the same point saved again (a re-run): move the old one aside first
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, path)
    _fsync_dir(path.parent)


def read_checkpoint(path: Path) -> Checkpoint:
    """Verifies a checkpoint folder against its manifest and loads everything but the weights.

    Raises:
        CheckpointError: the folder is incomplete, truncated, corrupt or of another format.
    """
    path = Path(path)
    fix = "delete it to resume from the checkpoint before it (or start a new output_dir)"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete (no {MANIFEST}); {fix}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an unreadable {MANIFEST} ({exc}); {fix}") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {manifest.get('format')}, this code reads {FORMAT}; {fix}")
    needed = (STATE, CONFIG) if manifest.get("layout") == "sharded" else (WEIGHTS, STATE, CONFIG)
    for name in needed:
        if name not in manifest.get("files", {}):
            raise CheckpointError(f"checkpoint {path} is incomplete (its manifest lacks {name}); {fix}")
    for name, meta in manifest["files"].items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete ({name} is missing); {fix}")
        if f.stat().st_size != meta["bytes"]:
            raise CheckpointError(
                f"checkpoint {path} is truncated ({name} has {f.stat().st_size} of {meta['bytes']} bytes); {fix}"
            )
        if _sha256(f) != meta["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt ({name} fails its checksum); {fix}")
    try:
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
        config = json.loads((path / CONFIG).read_text())
    except Exception as exc:  # a valid checksum over an unloadable file: written by something else
        raise CheckpointError(f"checkpoint {path} cannot be loaded ({type(exc).__name__}); {fix}") from None
    if state.get("stage") not in STAGES:
        raise CheckpointError(f"checkpoint {path} names an unknown stage {state.get('stage')!r}; {fix}")
    return Checkpoint(path=path, stage=state["stage"], step=int(state["step"]), state=state, config=config)


class CheckpointStore:
    """The checkpoints of one run: when to write, where, and how many to keep.

    Args:
        folder: where the checkpoint folders go (``<run>/checkpoints`` by default).
        every: steps between checkpoints inside a phase (0: phase boundaries only).
        keep: how many of the newest checkpoints to keep (>= 1).
        config: the run's resolved config, stored with every checkpoint.
        metrics_path: the run's metrics.jsonl; its length is recorded so a resumed run can cut
            the lines logged after the checkpoint instead of repeating them.
    """

    def __init__(self, folder: Path, every: int, keep: int, config: dict, metrics_path: Path | None = None):
        self.folder = Path(folder)
        self.every, self.keep = int(every), max(1, int(keep))
        self.config = config
        self.metrics_path = metrics_path

    def due(self, steps_done: int) -> bool:
        """Whether the interval asks for a checkpoint after this many steps of a phase."""
        return self.every > 0 and steps_done % self.every == 0

    def paths(self) -> list[Path]:
        """Complete-looking checkpoint folders, oldest first (hidden temporaries excluded)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, verified; None when there is none.

        Raises:
            CheckpointError: the newest one is damaged. It is reported, never skipped silently:
                the user decides whether to fall back to the one before it.
        """
        paths = self.paths()
        return read_checkpoint(paths[-1]) if paths else None

    def save(
        self, model: nn.Module, state: dict, global_step: int, extra_files: dict[str, bytes] | None = None
    ) -> Path:
        """Writes a checkpoint for `state` (which names its stage and step), then drops old ones."""
        path, state = self.path_for(state, global_step), self.with_metrics_position(state)
        write_checkpoint(path, model, state, self.config, extra_files)
        self.drop_old()
        return path

    def path_for(self, state: dict, global_step: int) -> Path:
        """Where the checkpoint of `state` at `global_step` goes (sorted by step, then stage)."""
        return self.folder / f"{global_step:09d}-{STAGES.index(state['stage'])}-{state['stage']}"

    def with_metrics_position(self, state: dict) -> dict:
        """`state` plus the length of metrics.jsonl and a digest of its lines, so a resume cuts
        the lines logged after it, and only from the file this run wrote.

        Raises:
            RunError: metrics.jsonl vanished (its run folder was deleted or replaced while the
                run wrote it): a checkpoint now would resume without those lines.
        """
        if self.metrics_path is None:
            return state
        from swp.infra.nofollow import open_plain
        from swp.infra.run_folder import prefix_digest

        try:
            fd = open_plain(self.metrics_path, os.O_RDONLY, error=RunError)
        except FileNotFoundError:
            raise RunError(f"{self.metrics_path} vanished while the run was writing it (was its folder deleted or "
                           "replaced?); its metric lines are lost: start the run again in a new output_dir") from None
        try:
            size = os.fstat(fd).st_size
            return state | {"metrics_bytes": size, "metrics_sha256": prefix_digest(fd, size)}
        finally:
            os.close(fd)

    def drop_old(self) -> None:
        """Removes temporaries left by a crash and all but the `keep` newest checkpoints."""
        for stale in self.folder.glob(".*.tmp-*"):  # left by a crash in an earlier write
            shutil.rmtree(stale, ignore_errors=True)
        for old in self.paths()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def clear(self) -> None:
        """Removes every checkpoint (after a run whose final artifacts are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
