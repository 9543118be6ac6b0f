"""The logger interface, its no-op option and the local metrics file every run keeps."""

from __future__ import annotations

import json
import math
from pathlib import Path


class Logger:
    """What the loop and pipeline call. Metric keys are slash-namespaced (``train/loss``)."""

    def log(self, metrics: dict, step: int) -> None:
        """Records metrics at a global step."""

    def summary(self, metrics: dict) -> None:
        """Records the run's final figures."""

    def finish(self, ok: bool = True) -> None:
        """Closes the logger; always called, also when the run fails."""


class NullLogger(Logger):
    """Logs nothing (``logger=none``). Accepts and ignores the run's config and folder."""

    def __init__(self, **_):
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

    def finish(self, ok: bool = True) -> None:
        for lg in self.loggers:
            lg.finish(ok)


def _plain(metrics: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
