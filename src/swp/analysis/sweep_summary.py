"""One summary of a whole Hydra sweep: sweep_results.csv, the compression curve (Fig. 3 for
loss, Fig. 4 for price MAE) and a W&B run of the sweep's group with a table and the curves."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path

from hydra.experimental.callback import Callback

from swp.logging.base import Logger

log = logging.getLogger(__name__)

CSV = "sweep_results.csv"
FIGURES = {"mae": "fig4_compression_mae.png", "loss": "fig3_compression_loss.png"}
_LEADING = ["job", "status", "pruner", "prune_rate", "target_sparsity", "prune_rate_used", "sparsity", "sparsity_overall"]
_TRAILING = ["error_type", "error", "overrides"]


def _job_key(path: Path):
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def job_folders(sweep_dir: str | Path) -> list[Path]:
    """The sweep's job folders (Hydra's ``.hydra`` marks them; results/error files too)."""
    sweep_dir = Path(sweep_dir)
    found = [
        p for p in sweep_dir.iterdir()
        if p.is_dir() and any((p / m).exists() for m in (".hydra", "results.json", "error.json"))
    ]
    return sorted(found, key=_job_key)


def collect(sweep_dir: str | Path) -> list[dict]:
    """One row per job: its results.json scalars, or status ``failed`` and why.

    A job without results.json failed: error.json says how when the run could record it;
    otherwise it was killed (or is still running).
    """
    rows = []
    for folder in job_folders(sweep_dir):
        row = {"job": folder.name}
        overrides = folder / ".hydra" / "overrides.yaml"
        if overrides.is_file():
            from omegaconf import OmegaConf

            row["overrides"] = " ".join(OmegaConf.load(overrides))
        results = folder / "results.json"
        if results.is_file():
            data = json.loads(results.read_text())
            row |= {"status": "ok"} | {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
        else:
            error = folder / "error.json"
            info = json.loads(error.read_text()) if error.is_file() else {}
            row |= {
                "status": "failed",
                "error_type": info.get("type", ""),
                "error": info.get("error", "no results.json and no error.json (killed or still running)"),
            }
        rows.append(row)
    return rows


def columns(rows: list[dict]) -> list[str]:
    """Identity and headline columns first, the rest in order of appearance, errors last."""
    seen = [c for row in rows for c in row]
    rest = [c for c in dict.fromkeys(seen) if c not in _LEADING and c not in _TRAILING]
    return [c for c in _LEADING if c in seen] + rest + [c for c in _TRAILING if c in seen]


def write_csv(path: str | Path, rows: list[dict]) -> list[str]:
    """Writes the rows atomically (parallel jobs may refresh the summary at the same time)."""
    path = Path(path)
    cols = columns(rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if row.get(c) is None else row.get(c, "")) for c in cols})
    os.replace(tmp, path)
    return cols


def headline_metric(rows: list[dict]) -> str | None:
    """``mae`` when the results have it (the price task), else ``loss``; None if neither."""
    keys = {k for row in rows for k in row}
    return next((m for m in FIGURES if f"val_{m}" in keys), None)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curves(rows: list[dict], metric: str, prefix: str = "val_") -> dict[str, tuple[list[float], list[float]]]:
    """pruner -> (sparsity %, metric) of the successful jobs, sorted by sparsity."""
    out: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        x, y = row.get("sparsity"), row.get(prefix + metric)
        if row.get("status") == "ok" and _finite(x) and _finite(y):
            out.setdefault(str(row.get("pruner") or "run"), []).append((100.0 * x, float(y)))
    return {name: ([p[0] for p in pts], [p[1] for p in pts]) for name, pts in ((n, sorted(v)) for n, v in out.items())}


def dense_reference(rows: list[dict], metric: str) -> float | None:
    """Mean dense (before pruning) metric over the successful jobs."""
    values = [row[f"dense_val_{metric}"] for row in rows if row.get("status") == "ok" and _finite(row.get(f"dense_val_{metric}"))]
    return sum(values) / len(values) if values else None


def summarize_sweep(sweep_dir: str | Path, logger: Logger | None = None) -> dict:
    """Writes sweep_results.csv and the compression figure in `sweep_dir`; logs them if asked.

    Returns:
        ``jobs``, ``ok``, ``failed`` counts, the ``csv`` path and the ``figure`` path (None
        when no job succeeded).
    """
    from swp.analysis.figures import compression_curve

    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    cols = write_csv(sweep_dir / CSV, rows)
    failed = [r["job"] for r in rows if r["status"] != "ok"]
    metric = headline_metric(rows)
    figure = None
    final = curves(rows, metric) if metric else {}
    before = {}
    if final:
        if any(r.get("pruned_val_" + metric) != r.get("val_" + metric) for r in rows if r["status"] == "ok"):
            before = curves(rows, metric, prefix="pruned_val_")  # the schedule fine-tuned: show both
        figure = compression_curve(
            sweep_dir / FIGURES[metric], final, metric, dense=dense_reference(rows, metric), before_finetune=before,
            title=f"Compression versus validation {metric} ({len(rows) - len(failed)} runs)",
        )
    if failed:
        log.warning("sweep %s: %d of %d jobs failed: %s", sweep_dir, len(failed), len(rows), ", ".join(failed))
    summary = {"jobs": len(rows), "ok": len(rows) - len(failed), "failed": len(failed), "csv": str(sweep_dir / CSV), "figure": figure and str(figure)}
    if logger is not None:
        logger.log_table("sweep/results", cols, [[_cell(row.get(c)) for c in cols] for row in rows])
        for name, data in (("final", final), ("before_finetune", before)):
            if data:
                logger.log_series(
                    f"sweep/compression_{metric}/{name}", [v[0] for v in data.values()], [v[1] for v in data.values()],
                    list(data), f"validation {metric} vs sparsity % ({name.replace('_', ' ')})", "sparsity %",
                )
        if figure is not None:
            logger.log_image(f"sweep/{figure.stem}", str(figure))
        logger.summary({k: v for k, v in summary.items() if k in ("jobs", "ok", "failed")})
    return summary


def _cell(v):
    """Table cells W&B accepts: numbers, strings, booleans; missing values become None."""
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def sweep_logger(logger_factory, sweep_dir: Path, overrides: list[str]) -> Logger:
    """The configured logger, opened as the sweep's summary run in the sweep folder."""
    return logger_factory(
        config={"sweep_dir": str(sweep_dir), "sweep_overrides": overrides}, out_dir=str(sweep_dir)
    )


class SweepSummaryCallback(Callback):
    """Hydra callback (``hydra.callbacks.sweep_summary`` in conf/train.yaml).

    After every job of a multirun it refreshes sweep_results.csv and the figure, so a sweep
    that Hydra aborts on a failed job still leaves its summary; when the whole sweep ends it
    also logs the summary run with the configured logger (W&B: the sweep's group).
    """

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            summarize_sweep(config.hydra.sweep.dir)
        except Exception as exc:  # the summary must never fail the job it follows
            log.warning("sweep summary not refreshed (%s: %s)", type(exc).__name__, exc)

    def on_multirun_end(self, config, **kwargs) -> None:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        factory = instantiate(config.logger, name=f"sweep {sweep_dir.name}", job_type="sweep_summary") if "logger" in config else None
        logger = sweep_logger(factory, sweep_dir, overrides) if factory is not None else None
        ok = False
        try:
            result = summarize_sweep(sweep_dir, logger)
            ok = True
            print(f"sweep summary: {result['ok']}/{result['jobs']} jobs ok -> {result['csv']}" + (f", {result['figure']}" if result["figure"] else ""))
        finally:
            if logger is not None:
                logger.finish(ok)
