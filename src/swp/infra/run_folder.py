"""The run folder's life cycle: where it is, whether it can be written, and what it already
holds (a finished run, a checkpoint to resume from, or nothing)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import yaml

from swp.errors import CheckpointError, ConfigError, one_line
from swp.infra.nofollow import open_plain, write_new_file
from swp.infra.run_files import folder_problem

if TYPE_CHECKING:  # imported where used: recording a failure must not wait for torch to import
    from swp.infra.checkpoint import Checkpoint

# Keys that may change between an interrupted run and its resumption without changing results
# (where it runs and how it reports), so they are not compared.
RUNTIME_KEYS = ("output_dir", "resume", "threads", "progress", "logger", "checkpoint", "dense_cache", "max_sparsity")


def choose(output_dir: str | None, resume: str | None, hydra_dir: str | None) -> Path:
    """`resume=<run dir>` continues that run in place; otherwise output_dir, then Hydra's folder."""
    if resume:
        if output_dir and Path(output_dir).resolve() != Path(resume).resolve():
            raise ConfigError(f"resume={resume} continues that run in its own folder; drop output_dir={output_dir}")
        if not Path(resume).is_dir():
            raise ConfigError(f"resume={resume} is not a run folder")
        return Path(resume)
    return Path(output_dir or hydra_dir)


def check_writable(folder: Path) -> None:
    """Creates the folder and proves a file can be written there, before any training."""
    probe = folder / f".write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_new_file(probe, b"ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"output folder {folder} is not writable ({exc.strerror or exc}); set output_dir to a writable folder"
        ) from None


LOCK = ".lock"


def check_run_folder(folder: Path) -> None:
    """Refuses, before anything is written there, a folder that is not a run's: one holding links
    or special files, a foreign or damaged config.yaml, or files a run does not write
    (`swp.infra.run_files`).

    Raises:
        ConfigError: naming the first problem.
    """
    why = folder_problem(Path(folder))
    if why:
        raise ConfigError(why)


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[Path]:
    """Holds an exclusive lock on the run folder for as long as the run uses it.

    An ``fcntl.flock`` on ``<folder>/.lock``: the kernel drops it when the process ends, however
    it ends (kill -9 included), so a stale lock never blocks a re-run. The file is left in place
    (removing a lock file while another process waits on it would let two runs in).

    Raises:
        ConfigError: another process holds the folder (its pid is named), the folder cannot be
            created, or it is not a run's (`check_run_folder`): nothing is written there then.
    """
    folder = Path(folder)
    check_run_folder(folder)
    check_writable(folder)
    path = folder / LOCK
    fd = open_plain(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"output folder {folder} is in use by another run (pid {holder}); "
                "wait for it to finish, or use another output_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _locked_by_another(folder: Path) -> bool:
    """Whether another process holds the folder's lock right now (never waits)."""
    path = Path(folder) / LOCK
    if not path.is_file():
        return False
    fd = open_plain(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def differences(saved: dict, current: dict) -> list[str]:
    """`key: saved -> current` for every setting that differs, runtime-only keys excepted."""
    a, b = _flatten(_drop(saved)), _flatten(_drop(current))
    return [
        f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}"
        for k in sorted(set(a) | set(b))
        if a.get(k, "<unset>") != b.get(k, "<unset>")
    ]


def _drop(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in RUNTIME_KEYS and k != "hydra"}


def _flatten(d, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out |= _flatten(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: d}


def _mismatch(what: str, diffs: list[str]) -> ConfigError:
    shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
    return ConfigError(
        f"{what} was made with a different config ({shown}); use a new output_dir or the original settings"
    )


def finished_results(folder: Path, config: dict) -> dict | None:
    """The results of a run already finished in this folder with this config (None if none).

    Raises:
        ConfigError: the folder holds a finished run of another config.
    """
    results, saved = folder / "results.json", folder / "config.yaml"
    if not results.is_file():
        return None
    fix = "use a new output_dir (or restore the file from a backup)"
    try:
        finished = json.loads(results.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"output folder {folder} has a damaged results.json ({_first_line(exc)}); {fix}") from None
    if not isinstance(finished, dict):
        raise ConfigError(f"output folder {folder} has a damaged results.json (not a mapping of results); {fix}")
    if not saved.is_file():  # without it there is no telling which config this run finished
        raise ConfigError(
            f"output folder {folder} holds results.json but no config.yaml, "
            f"so it cannot say which config it finished; {fix}"
        )
    try:
        old = yaml.safe_load(saved.read_text())  # safe_load: reading a run folder never runs code
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"output folder {folder} has a damaged config.yaml ({_first_line(exc)}); {fix}") from None
    if not isinstance(old, dict):
        raise ConfigError(f"output folder {folder} has a damaged config.yaml (not a mapping of settings); {fix}")
    diffs = differences(old, config)
    if diffs:
        raise _mismatch(f"output folder {folder} holds a finished run that", diffs)
    return finished


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_resumable(ckpt: Checkpoint, config: dict) -> None:
    """A checkpoint continues only the run that wrote it (same model, data, pruner, schedule)."""
    diffs = differences(ckpt.config, config)
    if diffs:
        raise _mismatch(f"checkpoint {ckpt.path}", diffs)


def prepare_metrics(path: Path, resume: Checkpoint | None) -> None:
    """Cuts metrics.jsonl back to what was logged up to the checkpoint (a fresh start: empty),
    so a resumed run's file reads as if it had never stopped. Only a plain file whose first
    bytes are the ones the checkpoint recorded is cut: never a link, never someone else's file.

    Raises:
        CheckpointError: the file is shorter than, or differs from, what the checkpoint saw.
        ConfigError: it is a link or not a plain file.
    """
    if not os.path.lexists(path):
        return
    keep = int(resume.state.get("metrics_bytes", 0)) if resume is not None else 0
    fd = open_plain(path, os.O_RDWR)
    try:
        if keep > os.fstat(fd).st_size:
            raise CheckpointError(
                f"checkpoint {resume.path} expects {keep} bytes of {path}, which is shorter; "
                "it was changed after the checkpoint"
            )
        expected = resume.state.get("metrics_sha256") if resume is not None else None
        if expected is not None and prefix_digest(fd, keep) != expected:
            raise CheckpointError(
                f"checkpoint {resume.path} recorded other lines in the first {keep} bytes of {path}: it was "
                "changed after the checkpoint, so it is left as it is; restore it, or use a new output_dir"
            )
        os.ftruncate(fd, keep)
    finally:
        os.close(fd)


def prefix_digest(fd: int, size: int) -> str:
    """SHA-256 of the first `size` bytes of an open file (what a checkpoint says it logged)."""
    import hashlib

    h, done = hashlib.sha256(), 0
    while done < size:
        chunk = os.pread(fd, min(1 << 20, size - done), done)
        if not chunk:
            break
        h.update(chunk)
        done += len(chunk)
    return h.hexdigest()


def open_run(folder: Path, config: dict, every: int, keep: int, resume_requested: str | None):
    """Checks the run folder and says what it holds: (store, checkpoint to resume, finished results).

    A folder with a finished run of this config returns its results (a re-launched sweep does not
    train finished jobs again); otherwise the newest checkpoint, if any, is verified against the
    config and returned for resuming.

    Raises:
        ConfigError: the folder is not writable, holds another config's run, or `resume` was
            asked for and there is no checkpoint.
        CheckpointError: the newest checkpoint is damaged (its path is named).
    """
    check_run_folder(folder)
    check_writable(folder)
    finished = finished_results(folder, config)
    if finished is not None:
        return None, None, finished
    from swp.infra.checkpoint import CheckpointStore

    store = CheckpointStore(folder / "checkpoints", every, keep, config, folder / "metrics.jsonl")
    resume = store.latest()
    if resume is not None:
        check_resumable(resume, config)
        print(f"resuming from {resume.path}")
    elif resume_requested:
        raise ConfigError(f"resume={resume_requested} holds no checkpoint to resume from")
    return store, resume, None


def record_failure(folder: Path, exc: BaseException) -> str | None:
    """Leaves error.json (never results.json) in the run folder, so a sweep summary can list the
    failed job and why. A folder holding a finished run is left intact, and a failure to write
    must not hide the original error: it is returned (None when written or not needed), for the
    error line to say that error.json could not be written."""
    tmp = folder / f".error.{os.getpid()}.tmp.json"
    try:
        if folder.is_dir() and folder_problem(folder):
            return None  # not a run's folder (it was refused for that): nothing is written there
        if (folder / "results.json").exists() or _locked_by_another(folder):
            return None  # a finished run, or one still running there (this failure was being refused it)
        folder.mkdir(parents=True, exist_ok=True)
        # Small and atomic: on a full disk it is written whole (the failed writer has freed its
        # temporary files first) or not at all, never as an empty file.
        write_new_file(tmp, json.dumps({"type": type(exc).__name__, "error": str(exc)}).encode())
        os.replace(tmp, folder / "error.json")
        return None
    except Exception as failure:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return (failure.strerror if isinstance(failure, OSError) and failure.strerror else None) or one_line(failure)
