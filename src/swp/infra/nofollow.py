"""Opening a run folder's files so the folder cannot be turned against its user.

A run folder is data that anyone who could write it may have prepared: a symbolic link planted
as ``metrics.jsonl`` would make a resumed run truncate and append to the file it points at, a
hard link would do the same to the inode it shares, and a FIFO would block the run forever.
Every file a run opens for writing is opened here: never through a link (``O_NOFOLLOW``),
only when it is a plain file with one name, and new files are created exclusively.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from swp.errors import ConfigError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FIX = "remove it or use a new output_dir"


def refusal(path: Path, st: os.stat_result) -> str | None:
    """Why a run may not open `path` (from its ``lstat``), or None when it is a plain file."""
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"{path} is a symbolic link (to {target}); files in a run folder are never links"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a plain file; a run folder holds only the run's own files"
    if st.st_nlink > 1:
        return (f"{path} has {st.st_nlink} hard links; a run never writes a file that another path "
                "shares (it could be anyone's)")
    return None


def open_plain(path: str | Path, flags: int, mode: int = 0o644, error: type[Exception] = ConfigError) -> int:
    """``os.open`` of a run folder file that refuses links and anything but a plain file.

    Raises:
        error: `path` is a symbolic or hard link, a FIFO, a device or a folder (one line, naming
            the link's target).
    """
    path = Path(path)
    try:
        fd = os.open(path, flags | NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError:
        st = _lstat(path)
        why = refusal(path, st) if st is not None else None
        if why:
            raise error(f"{why}: {FIX}") from None
        raise
    why = refusal(path, os.fstat(fd))
    if why:
        os.close(fd)
        raise error(f"{why}: {FIX}")
    os.set_blocking(fd, True)
    return fd


def write_new_file(path: str | Path, data: bytes) -> None:
    """Writes `data` to a file that did not exist: whatever has the name (a stale temporary, a
    planted link) is unlinked first, never followed; the new file is created exclusively."""
    remove_entry(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_entry(path: str | Path) -> None:
    """Unlinks a file or link at `path` if there is one (a link is removed, not its target)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None
