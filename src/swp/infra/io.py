"""What a run leaves in its folder: results.json and safetensors files."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file, save_model
from torch import nn

from swp.errors import RunError
from swp.infra.nofollow import remove_entry

# What a failed write raises: OSError from Python's own files, SafetensorError from safetensors
# (its Rust writer), RuntimeError from torch.save's zip writer ("unexpected pos ...").
WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)
FREE_DISK = "free disk space, then re-run the same command to resume"


def write_failure_reason(exc: BaseException, folder: Path) -> str | None:
    """A short reason for a failed write, or None when `exc` is not one (a bug to show as is).

    Any OSError is a write failure (its strerror is the reason). safetensors' and torch's own
    errors count only when the disk is full: their text says so, or the folder's filesystem
    has under 1 MiB left (torch.save only says "unexpected pos ...").
    """
    full = os.strerror(errno.ENOSPC)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return full
    text = str(exc)
    if "No space left on device" in text or "os error 28" in text:
        return full
    try:
        if shutil.disk_usage(folder).free < 1 << 20:
            return full
    except OSError:
        pass
    if isinstance(exc, OSError):
        return exc.strerror or text or type(exc).__name__
    return None


def write_atomic(path: Path, write: Callable[[Path], None], fix: str = FREE_DISK) -> None:
    """Calls `write(tmp)` on a temporary file beside `path`, then renames it into place.

    Raises:
        RunError: the write failed (a full disk, a read-only folder); the temporary file is
            removed, so it takes no space, and `path` is left as it was.
    """
    path = Path(path)
    # Unique per process (parallel sweep jobs refresh the same summary files); the suffix is kept
    # because some writers (matplotlib) choose the format from it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        remove_entry(tmp)  # a stale temporary, or a link planted under its name: never written through
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except WRITE_ERRORS as exc:
        tmp.unlink(missing_ok=True)
        reason = write_failure_reason(exc, path.parent)
        if reason is None:
            raise
        raise RunError(f"could not write {path}: {reason}; {fix}") from exc


def write_json_atomic(path: Path, obj) -> None:
    """Writes JSON through a temporary file and a rename, so a reader never sees half a file."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8"))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Saves named tensors (moved to CPU, contiguous) as safetensors, atomically."""
    plain = {n: t.detach().cpu().contiguous() for n, t in tensors.items()}
    write_atomic(path, lambda tmp: save_file(plain, str(tmp)))


def save_model_weights(path: Path, model: nn.Module) -> None:
    """Saves the model's state dict as safetensors, atomically; tied weights are stored once."""
    write_atomic(path, lambda tmp: save_model(model, str(tmp)))


def unique_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter once, even when tied (the GPT head shares the token embedding)."""
    seen, out = set(), []
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
