"""Reads back what an offline W&B run wrote, without W&B's servers (tests, inspection).

W&B 0.31 keeps an offline run as ``run-<id>.wandb``: a 7-byte header (``:W&B``, magic 0xBEE1,
version 0) followed by LevelDB-log framing (32 KiB blocks; each chunk has a 7-byte header of
CRC32C, length and type FULL/FIRST/MIDDLE/LAST) around ``wandb_internal_pb2.Record`` protobufs.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def raw_records(path: str | Path) -> Iterator[bytes]:
    """The serialized records of a ``.wandb`` file, in write order."""
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file (header {ident!r} {magic:#x} v{version})")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if pos + _HEADER + length > len(data):  # still being written
            return
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
        elif kind == 0 and length == 0:  # zero padding to the end of a block
            pos += _BLOCK - pos % _BLOCK if pos % _BLOCK else 0


@dataclass
class OfflineRun:
    """What a ``.wandb`` file says about its run (values decoded from their JSON)."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None
    files: list[str] = field(default_factory=list)

    def series(self, key: str) -> list[tuple[float, object]]:
        """(step, value) of every history row holding `key`."""
        return [(row.get("step"), row[key]) for row in self.history if key in row]


def _key(item) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(path: str | Path, wait_s: float = 0.0) -> OfflineRun:
    """Decodes the run record, config, history rows, summary, files and exit code.

    W&B's service process writes the file after ``run.finish()`` has returned, so a reader in
    the same process may see it half written; `wait_s` re-reads until the exit record is there
    (or the time is up, returning what was read).
    """
    deadline = time.monotonic() + wait_s
    while True:
        run = _decode(path)
        if run.exit_code is not None or time.monotonic() >= deadline:
            return run
        time.sleep(0.1)


def _decode(path: str | Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun()
    for raw in raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group = r.run_id, r.project, r.run_group
            run.name, run.job_type, run.tags = r.display_name, r.job_type, list(r.tags)
            run.config |= {_key(u): json.loads(u.value_json) for u in r.config.update}
        elif kind == "config":
            run.config |= {_key(u): json.loads(u.value_json) for u in record.config.update}
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary |= {_key(u): json.loads(u.value_json) for u in record.summary.update}
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def find_run_files(folder: str | Path) -> list[Path]:
    """Every offline run file under a folder (oldest first by name, which starts with the time)."""
    return sorted(Path(folder).glob("**/offline-run-*/run-*.wandb"))
