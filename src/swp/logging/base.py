"""The logger interface, its no-op option and the local metrics file every run keeps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

from swp.config_types import Runtime

# What the launcher passes every logger: the run's resolved config and its folder.
FromRun = Annotated[object, Runtime("the run's config and folder")]


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
    """Appends every logged dict as one JSON line to ``metrics.jsonl`` in the run folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def log(self, metrics: dict, step: int) -> None:
        self._f.write(json.dumps({"step": step} | _plain(metrics)) + "\n")
        self._f.flush()

    def summary(self, metrics: dict) -> None:
        self._f.write(json.dumps({"summary": _plain(metrics)}) + "\n")
        self._f.flush()

    def finish(self, ok: bool = True) -> None:
        self._f.close()


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
        for lg in self.loggers:
            lg.finish(ok)


def _plain(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
