"""Weights & Biases: one W&B run per training run, offline unless the user asks for online."""

from __future__ import annotations

import configparser
import logging
import os
from pathlib import Path
from typing import Annotated, Literal, Mapping, Sequence

from swp.config_types import Range, Runtime, check_arguments
from swp.errors import ConfigError
from swp.logging.base import Logger

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled", "shared")


def resolve_mode(
    mode: str | None, environ: Mapping[str, str] | None = None, settings_files: Sequence[Path] = ()
) -> str:
    """The W&B mode to run in: offline unless the user asked for another one somewhere.

    Precedence: the config's ``logger.mode``, then ``WANDB_MODE``, then a ``mode =`` line in a
    W&B settings file (what ``wandb online`` / ``wandb offline`` write), then ``offline``.
    Offline is the default because online init blocks for the init timeout on machines without
    network (clusters, CI), and offline runs upload later with ``wandb sync``.

    Args:
        mode: the configured mode, or None to defer to the user's W&B setup.
        environ: the environment to read (default: ``os.environ``).
        settings_files: W&B settings files to read, first match wins.
    """
    environ = os.environ if environ is None else environ
    chosen = mode or environ.get("WANDB_MODE") or _mode_from_settings(settings_files) or "offline"
    if chosen == "dryrun":  # W&B's old name for offline
        chosen = "offline"
    if chosen not in MODES:
        raise ConfigError(f"logger.mode (W&B) must be one of {', '.join(MODES)}, got {chosen!r}")
    return chosen


def user_settings_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where W&B keeps its settings: the workspace's ``wandb/settings``, then the global file."""
    environ = os.environ if environ is None else environ
    root = Path(environ.get("WANDB_DIR") or os.getcwd())
    config_dir = (
        Path(environ["WANDB_CONFIG_DIR"]) if environ.get("WANDB_CONFIG_DIR") else Path.home() / ".config" / "wandb"
    )
    return [root / "wandb" / "settings", config_dir / "settings"]


def _mode_from_settings(files: Sequence[Path]) -> str | None:
    for path in files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        if parser.has_option("default", "mode"):
            return parser.get("default", "mode").strip() or None
    return None


def sweep_group(run_dir: str | Path) -> str | None:
    """The group shared by the jobs of one Hydra sweep: the sweep folder's last two parts.

    A job folder sits inside its sweep folder, which Hydra marks with ``multirun.yaml`` before
    the first job starts; single runs are not inside one and get no group.
    """
    run_dir = Path(run_dir).resolve()
    for sweep_dir in (run_dir, run_dir.parent):
        if (sweep_dir / "multirun.yaml").is_file():
            return f"{sweep_dir.parent.name}/{sweep_dir.name}"
    return None


class WandbLogger(Logger):
    """Logs to a W&B run; if W&B cannot start, warns and lets the run go on with local logs.

    Metrics are plotted against a ``step`` metric that travels with every row, so several
    records at the same training step (dense eval, sparsity) never clash with W&B's own
    monotonic step counter.

    Args:
        config: the run's resolved config (plus the Hydra choices), stored as the W&B config.
        out_dir: the run folder; W&B writes its files under ``<out_dir>/wandb``.
        project, entity, group, tags, name, job_type, notes: the W&B run's identity; null
            ones fall back to W&B's variables (``WANDB_ENTITY``, ``WANDB_RUN_GROUP``, ...).
            A null group inside a Hydra sweep folder becomes the sweep's name (`sweep_group`).
        mode: online | offline | disabled | shared, or null for `resolve_mode`'s default.
        init_timeout: seconds W&B may take to start before the run gives up on it.
    """

    def __init__(
        self,
        config: Annotated[dict, Runtime("the run's resolved config")],
        out_dir: Annotated[str, Runtime("the run folder")],
        project: str = "swp",
        entity: str | None = None,
        group: str | None = None,
        tags: Sequence[str] | None = None,
        name: str | None = None,
        job_type: str | None = "train",
        notes: str | None = None,
        mode: Literal["online", "offline", "disabled"] | None = None,
        init_timeout: Annotated[float, Range(0, 86400, lo_open=True, why="seconds")] = 60.0,
    ):
        check_arguments(WandbLogger, locals(), at="logger")
        self.run = None
        self._step = 0
        mode = resolve_mode(mode, settings_files=user_settings_files())
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        try:
            import wandb

            self._wandb = wandb
            self.run = wandb.init(
                project=project,
                entity=entity,
                tags=list(tags) if tags else None,
                group=group or os.environ.get("WANDB_RUN_GROUP") or sweep_group(out_dir),
                name=name,
                job_type=job_type,
                notes=notes,
                config=config,
                dir=str(out_dir),
                mode=mode,
                settings=wandb.Settings(init_timeout=float(init_timeout)),
            )
            self.run.define_metric("step")
            self.run.define_metric("*", step_metric="step")
        except Exception as exc:  # never let the dashboard take a training run down
            self.run = None
            log.warning("W&B did not start (%s: %s); going on with local logging only", type(exc).__name__, exc)

    @property
    def active(self) -> bool:
        return self.run is not None

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self._step = step
            self.run.log(dict(metrics) | {"step": step})

    def summary(self, metrics: dict) -> None:
        if self.run is not None:
            self.run.summary.update(dict(metrics))

    def log_series(self, key, xs, ys, labels, title, xname) -> None:
        if self.run is not None:
            chart = self._wandb.plot.line_series(xs=xs, ys=ys, keys=labels, title=title, xname=xname)
            self.run.log({key: chart, "step": self._step})

    def log_table(self, key, columns, rows) -> None:
        if self.run is not None:
            self.run.log(
                {key: self._wandb.Table(columns=list(columns), data=[list(r) for r in rows]), "step": self._step}
            )

    def log_image(self, key, path) -> None:
        if self.run is not None:
            self.run.log({key: self._wandb.Image(str(path)), "step": self._step})

    def finish(self, ok: bool = True) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=0 if ok else 1)
        except Exception as exc:  # a failed upload must not mask the run's own outcome
            log.warning("W&B did not finish cleanly (%s: %s)", type(exc).__name__, exc)
