"""One summary of a whole Hydra sweep: sweep_results.csv (one row per job), sweep_aggregate.csv
(one row per pruner and sparsity point, mean / std / n over seeds), the compression curve
(Fig. 3 for loss or perplexity, Fig. 4 for price MAE) with a band per pruner and the two
reference lines, the data behind the figure (``.json`` beside it, one entry per drawn line), and
a W&B run of the sweep's group with the tables and the curves.

The reference lines: "dense, before fine-tune" is the dense model every job pruned (mean over
the seeds); "dense + same fine-tune" is the unpruned control (``pruner=none``, which the sweeper
adds to every sweep that fine-tunes), fine-tuned on the same schedule as the pruned models, so a
pruned model is compared with what the extra steps alone give. A sweep without fine-tuning draws
the dense line only.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections import Counter
from pathlib import Path

from hydra.experimental.callback import Callback

from swp.infra.io import write_atomic
from swp.logging.base import Logger
from swp.results import damage, scalars

log = logging.getLogger(__name__)

CSV = "sweep_results.csv"
AGGREGATE_CSV = "sweep_aggregate.csv"
FIGURES = {"mae": "fig4_compression_mae.png", "loss": "fig3_compression_loss.png", "ppl": "fig3_compression_ppl.png"}
CONTROL = "none"  # the pruner of the unpruned control
DENSE_LABEL, CONTROL_LABEL = "dense, before fine-tune", "dense + same fine-tune"
BANDS = {"std": "band: mean ± 1 std over seeds", "minmax": "band: min-max over seeds"}
# Overrides that are the sweep's axes or a job's identity, never part of a curve's name.
_NOT_A_VARIANT = ("target_sparsity", "prune_rate", "seed", "pruner", "recipe", "hydra", "output_dir", "resume")
_LEADING = ["job", "status", "pruner", "seed", "prune_rate", "target_sparsity", "prune_rate_used", "sparsity",
            "sparsity_overall"]
_TRAILING = ["error_type", "error", "overrides"]
_METRIC_NAMES = {"loss": "validation loss (nats/char)", "ppl": "validation perplexity", "mae": "validation MAE ($)"}
# zeroshot=local|paper7: the mean accuracy over the tasks, final and right after pruning.
ZEROSHOT, PRUNED_ZEROSHOT = "zeroshot/mean/acc", "pruned_zeroshot/mean/acc"
ZEROSHOT_METRIC, ZEROSHOT_FIGURE = "zeroshot_acc", "fig_zeroshot_compression.png"


def _num_key(path: Path):
    head = path.name.split("_", 1)[0]
    return (0, int(head), path.name) if head.isdigit() else (1, 0, path.name)


def job_folders(sweep_dir: str | Path) -> list[Path]:
    """The sweep's job folders (Hydra's ``.hydra`` marks them; results/error files too)."""
    sweep_dir = Path(sweep_dir)
    found = [
        p for p in sweep_dir.iterdir()
        if p.is_dir() and any((p / m).exists() for m in (".hydra", "results.json", "error.json"))
    ]
    return sorted(found, key=_num_key)


def _finetune_steps(folder: Path):
    """schedule.finetune_steps of a job, from the config the run saved (None if unknown)."""
    for name in ("config.yaml", ".hydra/config.yaml"):
        path = folder / name
        if path.is_file():
            try:
                from omegaconf import OmegaConf

                value = OmegaConf.select(OmegaConf.load(path), "schedule.finetune_steps")
                return int(value) if value is not None else None
            except Exception:  # an unreadable or interpolated config: fall back to the metrics
                return None
    return None


def collect(sweep_dir: str | Path) -> list[dict]:
    """One row per job: its results.json scalars, or status ``failed`` and why.

    A job without results.json failed: error.json says how when the run could record it;
    otherwise it was killed (or is still running). A results.json that cannot be read, is not a
    mapping or holds a non-number where a number belongs (`swp.results.damage`) makes the job
    ``failed`` too, with the reason: one bad job never stops the summary of the others.
    ``finetune_steps`` comes from the job's saved config when results.json does not carry it.
    """
    return [_job_row(folder) for folder in job_folders(sweep_dir)]


def _job_row(folder: Path) -> dict:
    row = {"job": folder.name} | _overrides_of(folder)
    results = folder / "results.json"
    if not results.is_file():
        return row | _failure(folder)
    data, why = _read_json(results)
    why = why or damage(data)
    if why:
        return row | {"status": "failed", "error_type": "DamagedResults", "error": f"results.json is damaged ({why})"}
    row |= {"status": "ok"} | scalars(data)  # stage_seconds as stage_seconds/<stage> columns
    if "finetune_steps" not in row:
        steps = _finetune_steps(folder)
        if steps is not None:
            row["finetune_steps"] = steps
    return row


def _failure(folder: Path) -> dict:
    """Why a job left no results.json: its error.json, or that it left none (killed, running)."""
    error = folder / "error.json"
    info, why = _read_json(error) if error.is_file() else ({}, None)
    if why or not isinstance(info, dict):
        why = why or "not a mapping"
        info = {"type": "DamagedError", "error": f"no results.json, and error.json is damaged ({why})"}
    return {"status": "failed", "error_type": str(info.get("type", "")),
            "error": str(info.get("error", "no results.json and no error.json (killed or still running)"))}


def _read_json(path: Path):
    """(data, None), or (None, the reason) for a file that is not UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, " ".join(str(exc).split())[:200]


def _overrides_of(folder: Path) -> dict:
    """The job's command-line overrides (Hydra's overrides.yaml), if readable."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    try:
        from omegaconf import OmegaConf

        return {"overrides": " ".join(str(o) for o in OmegaConf.load(path))}
    except Exception:  # damaged: the job is still listed, without the overrides that name its curve
        return {}


def columns(rows: list[dict]) -> list[str]:
    """Identity and headline columns first, the rest in order of appearance, errors last."""
    seen = [c for row in rows for c in row]
    rest = [c for c in dict.fromkeys(seen) if c not in _LEADING and c not in _TRAILING]
    return [c for c in _LEADING if c in seen] + rest + [c for c in _TRAILING if c in seen]


def write_csv(path: str | Path, rows: list[dict], cols: list[str] | None = None) -> list[str]:
    """Writes the rows atomically (parallel jobs may refresh the summary at the same time)."""
    path = Path(path)
    cols = cols or columns(rows)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=cols)
            writer.writeheader()
            for row in rows:
                writer.writerow({c: ("" if row.get(c) is None else row.get(c, "")) for c in cols})

    write_atomic(path, write)
    return cols


def _write_json(path: Path, data) -> Path:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1)))
    return path


def headline_metric(rows: list[dict]) -> str | None:
    """The metric the sweep is judged by: the ``headline_metric`` its results.json declare (the
    task's first metric: loss for characters, ppl for token LMs, mae for price); for results
    written before that key existed, ``mae`` if present, else ``ppl``, else ``loss``; None if none."""
    declared = Counter(r["headline_metric"] for r in rows if r.get("status", "ok") == "ok" and r.get("headline_metric"))
    if declared:
        return declared.most_common(1)[0][0]
    keys = {k for row in rows for k in row}
    return next((m for m in ("mae", "ppl", "loss") if f"val_{m}" in keys), None)


def lower_is_better(rows: list[dict]) -> bool:
    """What results.json declare (``lower_is_better``); True when they do not say."""
    values = [r["lower_is_better"] for r in rows if isinstance(r.get("lower_is_better"), bool)]
    return all(values) if values else True


def figure_name(metric: str) -> str:
    return FIGURES.get(metric, f"fig3_compression_{metric}.png")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _overrides(row: dict) -> dict[str, str]:
    out = {}
    for item in (row.get("overrides") or "").split():
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def variant_keys(rows: list[dict]) -> list[str]:
    """Override keys (other than the sparsity, seed and pruner axes) whose values differ between
    the jobs: e.g. ``pruner.average_of`` in `-m pruner.average_of=magnitude,signed`. Options of the
    pruner (``pruner.*``) are compared over the pruning jobs only (the control has none)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    parsed = [(r, _overrides(r)) for r in ok]
    keys = dict.fromkeys(k for _, o in parsed for k in o)
    varying = []
    for k in keys:
        if k in _NOT_A_VARIANT or k.split(".")[0] == "hydra":
            continue
        among = [o for r, o in parsed if not (k.startswith("pruner.") and r.get("pruner") == CONTROL)]
        if len({o[k] for o in among if k in o}) > 1:  # set to different values (not merely absent somewhere)
            varying.append(k)
    return varying


def curve_label(row: dict, keys: list[str]) -> str:
    """The curve a job belongs to: its recipe (bake-offs) or pruner, plus the varying overrides it sets."""
    o = _overrides(row)
    parts = [f"{k.removeprefix('pruner.')}={o[k]}" for k in keys if k in o]
    return " ".join([str(row.get("recipe") or row.get("pruner") or "run")] + parts)


def _point(row: dict):
    """The sweep point of a job: its target sparsity, else its prune rate (None for the control)."""
    if row.get("pruner") == CONTROL:
        return None
    if _finite(row.get("target_sparsity")):
        return float(row["target_sparsity"])
    return float(row["prune_rate"]) if _finite(row.get("prune_rate")) else None


def _stats(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


def aggregate(rows: list[dict], metric: str) -> list[dict]:
    """One row per curve and sweep point over the successful jobs (the seeds): n, the seeds, and
    mean / std (sample, n-1; empty for n = 1) / min / max of the measured sparsity and of the
    metric before pruning (``dense_val_``), right after it (``pruned_val_``) and at the end
    (``val_``). The control (``pruner=none``) is one row per curve, point empty."""
    keys = variant_keys(rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("status") == "ok" and _finite(row.get(f"val_{metric}")):
            groups.setdefault((curve_label(row, keys), _point(row)), []).append(row)
    out = []
    for (label, point), members in groups.items():
        first = members[0]
        agg = {
            "curve": label, "pruner": first.get("pruner"),
            "point_of": ("target_sparsity" if _finite(first.get("target_sparsity"))
                         else "prune_rate" if point is not None else ""),
            "point": point, "n": len(members),
            "seeds": " ".join(str(r.get("seed", "")) for r in members), "metric": metric,
        }
        for name, key in (("sparsity", "sparsity"), (f"dense_val_{metric}", f"dense_val_{metric}"),
                          (f"pruned_val_{metric}", f"pruned_val_{metric}"), (f"val_{metric}", f"val_{metric}"),
                          ("zeroshot_mean_acc", ZEROSHOT), ("pruned_zeroshot_mean_acc", PRUNED_ZEROSHOT)):
            values = [float(r[key]) for r in members if _finite(r.get(key))]
            if values:
                agg |= {f"{name}_{s}": v for s, v in _stats(values).items() if s != "n"}
        out.append(agg)
    out.sort(key=lambda a: (a["pruner"] == CONTROL, a["curve"], -1.0 if a["point"] is None else a["point"]))
    return out


def fine_tuned(rows: list[dict], metric: str) -> bool:
    """Whether the sweep's jobs fine-tuned after pruning (their saved schedule; for older folders,
    whether any final metric differs from the one right after pruning)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    steps = [r["finetune_steps"] for r in ok if _finite(r.get("finetune_steps"))]
    if steps:
        return any(s > 0 for s in steps)
    return any(r.get(f"pruned_val_{metric}") != r.get(f"val_{metric}") for r in ok)


def _band(agg: dict, key: str, band: str):
    mean, std = agg.get(f"{key}_mean"), agg.get(f"{key}_std")
    if band == "minmax":
        return agg.get(f"{key}_min"), agg.get(f"{key}_max")
    return (mean - std, mean + std) if std is not None else (mean, mean)


def figure_lines(aggregates: list[dict], rows: list[dict], metric: str, band: str = "std") -> list[dict]:
    """The lines of the compression figure, each {label, kind, x, y, lo, hi, n}:

    - ``curve``: a pruner's final metric, mean over seeds, with its band (x: sparsity %);
    - ``before_finetune``: the same pruner right after pruning (mean only), when the sweep fine-tuned;
    - ``dense``: "dense, before fine-tune", the dense model's metric (mean over the jobs' seeds);
    - ``control``: "dense + same fine-tune", the unpruned control's final metric (fine-tuned sweeps).
    """
    tuned = fine_tuned(rows, metric)
    lines = []
    curves = [a for a in aggregates if a["pruner"] != CONTROL]
    by_curve: dict[str, list[dict]] = {}
    for a in curves:
        by_curve.setdefault(a["curve"], []).append(a)
    for label, points in by_curve.items():
        points = sorted(points, key=lambda a: a.get("sparsity_mean", 0.0))
        los, his = zip(*(_band(a, f"val_{metric}", band) for a in points))
        lines.append({"label": label, "kind": "curve", "x": [100.0 * a["sparsity_mean"] for a in points],
                      "y": [a[f"val_{metric}_mean"] for a in points], "lo": list(los), "hi": list(his),
                      "n": [a["n"] for a in points]})
    if tuned:
        for label, points in by_curve.items():
            points = sorted(points, key=lambda a: a.get("sparsity_mean", 0.0))
            if all(f"pruned_val_{metric}_mean" in a for a in points):
                lines.append({"label": f"{label}, before fine-tune", "kind": "before_finetune",
                              "x": [100.0 * a["sparsity_mean"] for a in points],
                              "y": [a[f"pruned_val_{metric}_mean"] for a in points], "n": [a["n"] for a in points]})
    # The dense model: one value per seed (every job of a seed pruned the same dense model).
    per_seed: dict = {}
    for r in rows:
        if r.get("status") == "ok" and _finite(r.get(f"dense_val_{metric}")):
            per_seed.setdefault(r.get("seed"), float(r[f"dense_val_{metric}"]))
    if per_seed:
        s = _stats(list(per_seed.values()))
        lo, hi = _band({f"d_{k}": v for k, v in s.items()}, "d", band)
        lines.append({"label": DENSE_LABEL, "kind": "dense", "y": s["mean"], "lo": lo, "hi": hi, "n": s["n"]})
    if tuned:
        for a in aggregates:
            if a["pruner"] == CONTROL and f"val_{metric}_mean" in a:
                lo, hi = _band(a, f"val_{metric}", band)
                suffix = a["curve"].removeprefix(CONTROL)
                lines.append({"label": CONTROL_LABEL + suffix, "kind": "control", "y": a[f"val_{metric}_mean"],
                              "lo": lo, "hi": hi, "n": a["n"]})
    return lines


def summarize_sweep(sweep_dir: str | Path, logger: Logger | None = None, band: str = "std",
                    log_y: bool | None = None) -> dict:
    """Writes sweep_results.csv, sweep_aggregate.csv, the compression figure and its data (.json)
    in `sweep_dir`; logs them if asked.

    Args:
        band: ``std`` (mean ± 1 sample std over seeds) or ``minmax`` (the seeds' range).
        log_y: log-scale y axis; None: log for perplexity, linear otherwise.

    Returns:
        ``jobs``, ``ok``, ``failed`` counts, the ``csv``, ``aggregate``, ``figure`` and ``figure_data``
        paths (None when no job succeeded), the ``metric``, and ``failures`` (``job: type: why`` each).
    """
    from swp.analysis.bakeoff import is_bakeoff, summarize_bakeoff

    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    cols = write_csv(sweep_dir / CSV, rows)
    failures = [f"{r['job']}: {r['error_type']}: {r['error']}" for r in rows if r["status"] != "ok"]
    metric = headline_metric(rows)
    figure = data_path = None
    aggregates = aggregate(rows, metric) if metric else []
    agg_cols = list(dict.fromkeys(c for a in aggregates for c in a))  # curve, pruner, point, n, seeds, stats
    lines = []
    if aggregates:
        write_csv(sweep_dir / AGGREGATE_CSV, aggregates, agg_cols)
        lines = figure_lines(aggregates, rows, metric, band)
    if any(line["kind"] == "curve" for line in lines):
        figure, data_path = _headline_figure(sweep_dir, rows, lines, metric, band, log_y, len(rows) - len(failures))
    zeroshot = zeroshot_figure(sweep_dir, rows, band)
    bakeoff = None
    if metric and is_bakeoff(rows):  # curves against tokens and the table against the best one-shot recipe
        bakeoff = summarize_bakeoff(sweep_dir, rows, metric, band, lower_is_better(rows), logger)
    if failures:
        log.warning("sweep %s: %d of %d jobs failed: %s", sweep_dir, len(failures), len(rows), "; ".join(failures))
    summary = {"jobs": len(rows), "ok": len(rows) - len(failures), "failed": len(failures), "csv": str(sweep_dir / CSV),
               "aggregate": str(sweep_dir / AGGREGATE_CSV) if aggregates else None, "metric": metric,
               "figure": figure and str(figure), "figure_data": data_path and str(data_path), "failures": failures,
               "zeroshot_figure": zeroshot and str(zeroshot), "bakeoff": bakeoff}
    if logger is not None:
        _log_summary(logger, rows, cols, aggregates, agg_cols, lines, metric, figure, summary)
    return summary


def _headline_figure(sweep_dir: Path, rows: list[dict], lines: list[dict], metric: str, band: str, log_y, ok: int):
    """Fig. 3/4: the headline metric against compression, and its data (.json)."""
    from swp.analysis.figures import compression_curve

    log_scale = (metric == "ppl") if log_y is None else bool(log_y)
    ylabel = _METRIC_NAMES.get(metric, f"validation {metric}")
    seeds = max(line["n"] if isinstance(line["n"], int) else max(line["n"]) for line in lines)
    better = "lower is better" if lower_is_better(rows) else "higher is better"
    per_point = f"up to {seeds} seeds a point" if seeds != 1 else "1 seed a point"
    title = f"Compression versus {ylabel} ({ok} runs, {per_point})"
    figure = compression_curve(sweep_dir / figure_name(metric), lines, ylabel=f"{ylabel}, {better}",
                               title=title, band_note=BANDS[band], log_y=log_scale)
    data_path = _write_json(figure.with_suffix(".json"), {
        "figure": figure.name, "metric": metric, "ylabel": ylabel, "lower_is_better": lower_is_better(rows),
        "band": band, "band_note": BANDS[band], "log_y": log_scale, "lines": lines,
    })
    return figure, data_path


def _log_summary(logger, rows, cols, aggregates, agg_cols, lines, metric, figure, summary) -> None:
    """The sweep's W&B run: the per-job and aggregate tables, the curves (means, band edges,
    reference lines) as line charts, the rendered figure and the counts."""
    logger.log_table("sweep/results", cols, [[_cell(row.get(c)) for c in cols] for row in rows])
    if aggregates:
        logger.log_table("sweep/aggregate", agg_cols, [[_cell(a.get(c)) for c in agg_cols] for a in aggregates])
    curves = [ln for ln in lines if ln["kind"] == "curve"]
    before = [ln for ln in lines if ln["kind"] == "before_finetune"]
    refs = [ln for ln in lines if ln["kind"] in ("dense", "control")]
    name = f"sweep/compression_{metric}"
    if curves:
        logger.log_series(f"{name}/final", [ln["x"] for ln in curves], [ln["y"] for ln in curves],
                          [ln["label"] for ln in curves],
                          f"validation {metric} vs sparsity % (mean over seeds)", "sparsity %")
        logger.log_series(f"{name}/band", [ln["x"] for ln in curves for _ in (0, 1)],
                          [ln[e] for ln in curves for e in ("lo", "hi")],
                          [f"{ln['label']} {e}" for ln in curves for e in ("lo", "hi")],
                          f"validation {metric}: band edges over seeds", "sparsity %")
        if refs:
            xs = [min(x for ln in curves for x in ln["x"]), max(x for ln in curves for x in ln["x"])]
            logger.log_series(f"{name}/reference", xs, [[ln["y"], ln["y"]] for ln in refs],
                              [ln["label"] for ln in refs],
                              f"validation {metric}: reference lines", "sparsity %")
    if before:
        logger.log_series(f"{name}/before_finetune", [ln["x"] for ln in before], [ln["y"] for ln in before],
                          [ln["label"] for ln in before], f"validation {metric} vs sparsity % (before fine-tune)",
                          "sparsity %")
    for path in (figure, summary.get("zeroshot_figure")):
        if path is not None:
            logger.log_image(f"sweep/{Path(path).stem}", str(path))
    logger.summary({k: v for k, v in summary.items() if k in ("jobs", "ok", "failed")}
                   | {f"reference/{ln['kind']}_val_{metric}": ln["y"] for ln in refs})


def zeroshot_rows(rows: list[dict]) -> list[dict]:
    """The jobs that were scored zero-shot, with their mean accuracy read as the metric
    ``zeroshot_acc`` (final: ``val_zeroshot_acc``; right after pruning: ``pruned_val_...``), so
    the aggregation and the figure lines of the headline metric serve it unchanged."""
    out = []
    for row in rows:
        if row.get("status") == "ok" and _finite(row.get(ZEROSHOT)):
            extra = {f"val_{ZEROSHOT_METRIC}": row[ZEROSHOT]}
            if _finite(row.get(PRUNED_ZEROSHOT)):
                extra[f"pruned_val_{ZEROSHOT_METRIC}"] = row[PRUNED_ZEROSHOT]
            out.append(row | extra)
    return out


def zeroshot_figure(sweep_dir: Path, rows: list[dict], band: str) -> Path | None:
    """Zero-shot mean accuracy against compression, a band per pruner and the unpruned control
    (``fig_zeroshot_compression.png`` and its ``.json``); None when no job was scored."""
    from swp.analysis.figures import compression_curve

    scored = zeroshot_rows(rows)
    lines = figure_lines(aggregate(scored, ZEROSHOT_METRIC), scored, ZEROSHOT_METRIC, band) if scored else []
    if not any(line["kind"] == "curve" for line in lines):
        return None
    ylabel = "zero-shot mean accuracy over the tasks"
    figure = compression_curve(sweep_dir / ZEROSHOT_FIGURE, lines, ylabel=f"{ylabel}, higher is better",
                               title=f"Compression versus {ylabel} ({len(scored)} runs)", band_note=BANDS[band],
                               log_y=False)
    _write_json(figure.with_suffix(".json"), {"figure": figure.name, "metric": ZEROSHOT, "ylabel": ylabel,
                                              "lower_is_better": False, "band": band, "lines": lines})
    return figure


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

    After every job of a multirun it refreshes the CSVs and the figure, so a sweep that Hydra
    aborts on a failed job still leaves its summary; when the whole sweep ends it also logs the
    summary run with the configured logger (W&B: the sweep's group).

    Args:
        band: ``std`` or ``minmax`` (``hydra.callbacks.sweep_summary.band=minmax``).
        log_y: log-scale y axis (None: log for perplexity only).
    """

    def __init__(self, band: str = "std", log_y: bool | None = None):
        self.band, self.log_y = band, log_y
        self.failed: list[str] = []  # job folders of this launch that left no results.json

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        if not (job_dir / "results.json").is_file():
            self.failed.append(job_dir.name)
        try:
            summarize_sweep(config.hydra.sweep.dir, band=self.band, log_y=self.log_y)
        except Exception as exc:  # the summary must never fail the job it follows
            log.warning("sweep summary not refreshed (%s: %s)", type(exc).__name__, exc)

    def on_multirun_end(self, config, **kwargs) -> None:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        factory = (instantiate(config.logger, name=f"sweep {sweep_dir.name}", job_type="sweep_summary")
                   if "logger" in config else None)
        logger = sweep_logger(factory, sweep_dir, overrides) if factory is not None else None
        ok = False
        try:
            result = summarize_sweep(sweep_dir, logger, band=self.band, log_y=self.log_y)
            ok = True
            print(f"sweep summary: {result['ok']}/{result['jobs']} jobs ok -> {result['csv']}"
                  + (f", {result['aggregate']}" if result["aggregate"] else "")
                  + (f", {result['figure']}" if result["figure"] else ""))
        finally:
            if logger is not None:
                logger.finish(ok)
        if self.failed:  # the other jobs ran; a cluster script or CI must still notice
            print(f"sweep: {len(self.failed)} job(s) failed: {', '.join(self.failed)} (see their error.json)",
                  file=sys.stderr)
            sys.exit(1)
