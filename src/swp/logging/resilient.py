"""Keeps a failing logging backend (W&B down, network lost) from stopping a training run.

The local metrics.jsonl is not wrapped: it is the record that must survive. Remote backends
are, so the first exception disables that backend with one warning and training goes on.
"""

from __future__ import annotations

import sys
from typing import Callable

from swp.logging.base import Logger, NullLogger


class FailSafeLogger(Logger):
    """Forwards calls to `inner` until one raises; then warns once and drops the backend."""

    def __init__(self, inner: Logger, name: str = "logger"):
        self.inner: Logger | None = inner
        self.name = name
        self.error: str | None = None

    def _call(self, method: str, *args) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, method)(*args)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"warning: {self.name} failed in {method}() ({self.error}); it is disabled for the rest "
                  "of the run, metrics.jsonl keeps every metric", file=sys.stderr)
            inner, self.inner = self.inner, None
            if method != "finish":
                try:
                    inner.finish(False)
                except Exception:
                    pass

    def log(self, metrics: dict, step: int) -> None:
        self._call("log", metrics, step)

    def summary(self, metrics: dict) -> None:
        self._call("summary", metrics)

    def log_series(self, key, xs, ys, labels, title, xname) -> None:
        self._call("log_series", key, xs, ys, labels, title, xname)

    def log_table(self, key, columns, rows) -> None:
        self._call("log_table", key, columns, rows)

    def log_image(self, key, path) -> None:
        self._call("log_image", key, path)

    def finish(self, ok: bool = True) -> None:
        self._call("finish", ok)


def start_backend(factory: Callable[[], Logger], name: str = "logger") -> Logger:
    """Builds a backend; one that cannot start is replaced by a no-op with a warning."""
    try:
        return FailSafeLogger(factory(), name)
    except Exception as exc:
        print(f"warning: {name} could not start ({type(exc).__name__}: {exc}); continuing with "
              "metrics.jsonl only", file=sys.stderr)
        return NullLogger()
