"""The logger interface, its no-op option and the local metrics file every run keeps."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated

from swp.config_types import Runtime

# What the launcher passes every logger: the run's resolved config and its folder.
FromRun = Annotated[object, Runtime("the run's config and folder")]

from swp.errors import RunError, one_line
from swp.infra.nofollow import open_plain


class Logger:
    """What the loop and pipeline call. Metric keys are slash-namespaced (``train/loss``)."""

    def log(self, metrics: dict, step: int) -> None:
        """Records metrics at a global step."""

    def summary(self, metrics: dict) -> None:
        """Records the run's final figures."""

    def finish(self, ok: bool = True) -> None:
        """Closes the logger; always called, also when the run fails."""

    # Rich records for dashboards (W&B). Every run also saves them as files (npz, csv, png),
    # so loggers without charts ignore them.
    def log_series(self, key: str, xs: list, ys: list[list[float]], labels: list[str], title: str, xname: str) -> None:
        """A chart of several lines; ``xs`` is shared or holds one x list per line."""

    def log_table(self, key: str, columns: list[str], rows: list[list]) -> None:
        """A table of rows."""

    def log_image(self, key: str, path: str) -> None:
        """An image file (a rendered figure)."""


class NullLogger(Logger):
    """Logs nothing (``logger=none``). Accepts and ignores the run's config and folder."""

    def __init__(self, **_: FromRun):
        pass


class JsonlLogger(Logger):
    """Appends every logged dict as one JSON line to ``metrics.jsonl`` in the run folder.

    Each line is written straight to the file (no buffer that a later close could fail to
    flush). The file is opened without following links (`swp.infra.nofollow`), and after every
    line the run checks that the file still has its name: a run folder deleted or replaced
    while the run writes it ends the run with one line, never with exit 0 and lost lines.

    Raises (from `log` / `summary`):
        RunError: the line could not be written (a full disk), or the file was deleted.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = open_plain(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def log(self, metrics: dict, step: int) -> None:
        self._append(json.dumps({"step": step} | _plain(metrics)) + "\n")

    def summary(self, metrics: dict) -> None:
        self._append(json.dumps({"summary": _plain(metrics)}) + "\n")

    def _append(self, line: str) -> None:
        try:
            append_line(self._fd, line.encode("utf-8"))
        except OSError as exc:
            raise RunError(f"could not append to {self.path}: {exc.strerror or exc}; free disk space, then re-run "
                           "the same command to resume") from exc
        if os.fstat(self._fd).st_nlink == 0:
            raise RunError(f"{self.path} was deleted while the run was writing it (was its folder removed or "
                           "replaced?); its metric lines are lost: start the run again in a new output_dir")

    def finish(self, ok: bool = True) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def append_line(fd: int, data: bytes) -> None:
    """Writes all of `data` to `fd` (its own function: tests make it fail like a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class LoggerGroup(Logger):
    """Fans every call out to several loggers."""

    def __init__(self, *loggers: Logger):
        self.loggers = loggers

    def log(self, metrics: dict, step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def summary(self, metrics: dict) -> None:
        for lg in self.loggers:
            lg.summary(metrics)

    def log_series(self, key, xs, ys, labels, title, xname) -> None:
        for lg in self.loggers:
            lg.log_series(key, xs, ys, labels, title, xname)

    def log_table(self, key, columns, rows) -> None:
        for lg in self.loggers:
            lg.log_table(key, columns, rows)

    def log_image(self, key, path) -> None:
        for lg in self.loggers:
            lg.log_image(key, path)

    def finish(self, ok: bool = True) -> None:
        """Closes every logger. After a failure (`ok` false) a logger that fails to close is
        reported in one warning line, never raised over the run's own error; after success
        the first such failure is raised once all are closed."""
        first = None
        for lg in self.loggers:
            try:
                lg.finish(ok)
            except Exception as exc:
                if ok:
                    first = first or exc
                else:
                    print(f"warning: {type(lg).__name__} could not be closed after the failure ({one_line(exc)})",
                          file=sys.stderr)
        if first is not None:
            raise first


def _plain(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
