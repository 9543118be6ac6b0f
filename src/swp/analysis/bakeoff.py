"""The bake-off's summary (docs/bakeoff.md): quality against training tokens, one curve per
recipe with a band over seeds, and the final values with paired differences against the best
one-shot recipe, at every sparsity point (and every other swept setting, e.g. ``budget.scale``).

A sweep is a bake-off when its jobs name a recipe (results.json ``recipe``). The files, in the
sweep folder: ``bakeoff_curves.png`` (one panel per sparsity and setting; ``.json`` beside it
holds the drawn data), ``bakeoff_table.csv`` and ``bakeoff_table.md``; the figure and the table
also go to the sweep's W&B run.

A one-shot recipe prunes once without watching training: no pruning-phase tokens and no
tracking points (magnitude, Wanda, SparseGPT). The best one-shot recipe of a point is the one
of best mean final metric there; every recipe is compared with it seed by seed.
"""

from __future__ import annotations

import json
from pathlib import Path

from swp.analysis.stats import mean_std, paired
from swp.analysis.sweep_summary import (
    CONTROL,
    _cell,
    _finite,
    _overrides,
    _point,
    job_folders,
    variant_keys,
    write_csv,
)
from swp.infra.io import write_atomic

FIGURE, TABLE_CSV, TABLE_MD = "bakeoff_curves.png", "bakeoff_table.csv", "bakeoff_table.md"
BUDGET_FIGURE = "bakeoff_budget.png"  # a budget sweep: the final metric against the total training tokens
DENSE = "dense"  # the label of the unpruned control


def is_bakeoff(rows: list[dict]) -> bool:
    return any(r.get("recipe") for r in rows if r.get("status") == "ok")


def recipe_of(row: dict) -> str:
    """A job's curve: its recipe; the sweeper's control (pruner=none) is the dense recipe."""
    if row.get("recipe"):
        return str(row["recipe"])
    return DENSE if row.get("pruner") == CONTROL else str(row.get("pruner"))


def one_shot(row: dict) -> bool:
    """Prunes once without watching training (no pruning-phase tokens, no tracking points)."""
    return row.get("pruner") != CONTROL and row.get("tokens_pruning") == 0 and not row.get("tracking_points")


def job_curves(sweep_dir: str | Path) -> dict[str, list[dict]]:
    """results.json ``curve`` of every finished job, by job folder name."""
    out = {}
    for folder in job_folders(sweep_dir):
        path = folder / "results.json"
        if path.is_file():
            out[folder.name] = json.loads(path.read_text()).get("curve") or []
    return out


def _setting_fn(rows: list[dict]):
    """Row -> its swept setting besides recipe, sparsity and seed (e.g. ``budget.scale=4``)."""
    keys = variant_keys(rows)  # (recipe, sparsity and seed are never among them)

    def setting(row: dict) -> str:
        o = _overrides(row)
        return " ".join(f"{k}={o[k]}" for k in keys if k in o)
    return setting


def _cells(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(setting, sparsity point, recipe) -> its finished jobs; the control (no point) is placed
    at every point of its setting."""
    setting = _setting_fn(rows)
    ok = [r for r in rows if r.get("status") == "ok"]
    points: dict[str, set] = {}
    for r in ok:
        if _point(r) is not None:
            points.setdefault(setting(r), set()).add(_point(r))
    cells: dict[tuple, list[dict]] = {}
    for r in ok:
        at = [_point(r)] if _point(r) is not None else sorted(points.get(setting(r), {None}))
        for p in at:
            cells.setdefault((setting(r), p, recipe_of(r)), []).append(r)
    return cells


def _mean_curve(curves: list[list[dict]], key: str, band: str) -> dict:
    """Mean over seeds of the points the curves share, in the first curve's order (a one-shot
    recipe has two points at the prune: dense, then pruned)."""
    order = [(p["tokens"], p["stage"]) for p in curves[0] if _finite(p.get(key))]
    by_seed = [{(p["tokens"], p["stage"]): p.get(key) for p in c} for c in curves]
    x, y, lo, hi, n = [], [], [], [], []
    for at in order:
        values = [float(c[at]) for c in by_seed if _finite(c.get(at))]
        mean, std = mean_std(values)
        spread = (min(values), max(values)) if band == "minmax" else (mean - (std or 0.0), mean + (std or 0.0))
        x.append(at[0])
        y.append(mean)
        lo.append(spread[0])
        hi.append(spread[1])
        n.append(len(values))
    return {"x": x, "y": y, "lo": lo, "hi": hi, "n": n, "stage": [s for _, s in order]}


def curve_panels(rows: list[dict], curves: dict[str, list[dict]], metric: str, band: str = "std") -> list[dict]:
    """One panel per (setting, sparsity point), one line per recipe: the validation metric
    against the run's training tokens, mean over seeds with its band."""
    panels: dict[tuple, dict] = {}
    for (setting, point, recipe), members in sorted(_cells(rows).items(), key=lambda kv: _order(kv[0])):
        found = [curves[r["job"]] for r in members if curves.get(r["job"])]
        if not found:
            continue
        title = " ".join(x for x in (f"sparsity {point:.0%}" if point is not None else "", setting) if x)
        panel = panels.setdefault((setting, point), {"title": title or "all jobs", "lines": []})
        panel["lines"].append({"label": recipe} | _mean_curve(found, f"val_{metric}", band))
    return list(panels.values())


def budget_panels(rows: list[dict], metric: str, band: str = "std") -> list[dict]:
    """A sweep over budgets (jobs whose ``tokens_total`` differ): one panel per sparsity point,
    one line per recipe, the final metric against the run's total training tokens (mean over
    seeds with its band). Empty when every job had the same budget."""
    key = f"val_{metric}"
    ok = [r for r in rows if r.get("status") == "ok" and _finite(r.get(key)) and r.get("tokens_total")]
    if len({r["tokens_total"] for r in ok}) < 2:
        return []
    points = sorted({_point(r) for r in ok if _point(r) is not None})
    groups: dict[tuple, dict] = {}
    for r in ok:
        for p in [_point(r)] if _point(r) is not None else points:
            groups.setdefault((p, recipe_of(r)), {}).setdefault(r["tokens_total"], []).append(float(r[key]))
    panels: dict = {}
    for (point, recipe), by_tokens in sorted(groups.items(), key=lambda kv: _order(("", kv[0][0], kv[0][1]))):
        xs = sorted(by_tokens)
        stats = [(mean_std(by_tokens[x]), by_tokens[x]) for x in xs]
        lo = [min(v) if band == "minmax" else m - (sd or 0.0) for (m, sd), v in stats]
        hi = [max(v) if band == "minmax" else m + (sd or 0.0) for (m, sd), v in stats]
        title = f"sparsity {point:.0%}" if point is not None else "all jobs"
        line = {"label": recipe, "x": xs, "y": [m for (m, _), _ in stats], "lo": lo, "hi": hi,
                "n": [len(v) for _, v in stats]}
        panels.setdefault(point, {"title": title, "lines": []})["lines"].append(line)
    return list(panels.values())


def _order(cell: tuple):
    setting, point, recipe = cell
    return setting, -1.0 if point is None else point, recipe != DENSE, recipe


def final_table(rows: list[dict], metric: str, lower_is_better: bool = True) -> list[dict]:
    """Per (setting, point, recipe): the final metric's n, mean and std over seeds, and its
    paired difference with the point's best one-shot recipe (mean, 95% t interval, whether the
    interval excludes 0, and which of the two is better then)."""
    key = f"val_{metric}"
    jobs = _cells(rows)
    cells = {c: {r.get("seed"): float(r[key]) for r in rs if _finite(r.get(key))} for c, rs in jobs.items()}
    shots = {c for c, rs in jobs.items() if all(one_shot(r) for r in rs)}
    out = []
    for (setting, point, recipe), values in sorted(cells.items(), key=lambda kv: _order(kv[0])):
        if not values:
            continue
        best = _best(((c, v) for c, v in cells.items() if c in shots and c[:2] == (setting, point) and v),
                     lower_is_better)
        mean, std = mean_std(list(values.values()))
        row = {"setting": setting, "point": point, "recipe": recipe, "one_shot": (setting, point, recipe) in shots,
               "n": len(values), "mean": mean, "std": std, "vs": best[0][2] if best else None}
        diff = paired(values, best[1]) if best else None
        if diff is not None:
            row |= {"diff": diff["mean"], "diff_lo": diff["lo"], "diff_hi": diff["hi"], "beyond": diff["beyond"]}
            row["better"] = (_winner(recipe, best[0][2], diff["mean"], lower_is_better)
                             if diff["beyond"] and recipe != best[0][2] else "")
        out.append(row)
    return out


def _best(candidates, lower_is_better: bool = True):
    """The (cell, values) of best mean among `candidates` (None if there is none)."""
    ranked = sorted(candidates, key=lambda cv: mean_std(list(cv[1].values()))[0])
    if not ranked:
        return None
    return ranked[0] if lower_is_better else ranked[-1]


def _winner(a: str, b: str, diff: float, lower_is_better: bool) -> str:
    return a if (diff < 0) == lower_is_better else b


def table_markdown(table: list[dict], metric: str, lower_is_better: bool = True) -> str:
    """The table as markdown: one block per setting and point, recipes by mean final metric."""
    better = "lower" if lower_is_better else "higher"
    lines = [f"Final validation {metric} ({better} is better), mean ± std over seeds; Δ: recipe minus the best "
             "one-shot recipe of the point, paired by seed, with its 95% t interval.", ""]
    lines += ["| setting | sparsity | recipe | n | final | Δ vs best one-shot | 95% interval | beyond seed spread |",
              "|---|---|---|---|---|---|---|---|"]
    for r in table:
        final = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] is not None else "")
        itself = r["recipe"] == r["vs"]
        diff = "" if "diff" not in r or itself else f"{r['diff']:+.4f} (vs {r['vs']})"
        interval = "" if r.get("diff_lo") is None or itself else f"[{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}]"
        beyond = {True: "yes: " + r.get("better", ""), False: "no", None: ""}[r.get("beyond")]
        point = "" if r["point"] is None else f"{r['point']:.0%}"
        shot = " (one-shot)" if r["one_shot"] else ""
        lines.append(f"| {r['setting']} | {point} | {r['recipe']}{shot} | {r['n']} | {final} | {diff} | {interval} "
                     f"| {'best one-shot' if itself else beyond} |")
    return "\n".join(lines) + "\n"


def summarize_bakeoff(sweep_dir: str | Path, rows: list[dict], metric: str, band: str = "std",
                      lower_is_better: bool = True, logger=None) -> dict:
    """Writes the bake-off's figure (and its data), CSV and markdown table; logs them if asked.

    Returns:
        the ``figure``, ``figure_data``, ``table`` and ``table_md`` paths (figure None when no
        job has a curve).
    """
    from swp.analysis.figures import token_curves

    sweep_dir = Path(sweep_dir)
    panels = curve_panels(rows, job_curves(sweep_dir), metric, band)
    table = final_table(rows, metric, lower_is_better)
    cols = list(dict.fromkeys(c for r in table for c in r))
    write_csv(sweep_dir / TABLE_CSV, table, cols)
    markdown = table_markdown(table, metric, lower_is_better)
    write_atomic(sweep_dir / TABLE_MD, lambda tmp: tmp.write_text(markdown))
    _budget_figure(sweep_dir, rows, metric, band, lower_is_better, logger)
    figure = data = None
    if panels:
        better = "lower is better" if lower_is_better else "higher is better"
        figure = token_curves(sweep_dir / FIGURE, panels, ylabel=f"validation {metric} ({better})",
                              title=f"Validation {metric} against training tokens, every recipe on the same budget",
                              band_note="band: " + ("min-max" if band == "minmax" else "mean ± 1 std") + " over seeds")
        data = sweep_dir / Path(FIGURE).with_suffix(".json").name
        write_atomic(data, lambda tmp: tmp.write_text(json.dumps({"metric": metric, "panels": panels}, indent=1)))
    if logger is not None:
        logger.log_table("sweep/bakeoff_table", cols, [[_cell(r.get(c)) for c in cols] for r in table])
        if figure is not None:
            logger.log_image("sweep/bakeoff_curves", str(figure))
    return {"figure": figure and str(figure), "figure_data": data and str(data),
            "table": str(sweep_dir / TABLE_CSV), "table_md": str(sweep_dir / TABLE_MD)}


def _budget_figure(sweep_dir: Path, rows: list[dict], metric: str, band: str, lower_is_better: bool, logger) -> None:
    """bakeoff_budget.png (+ .json) when the jobs' budgets differ; logged if asked."""
    from swp.analysis.figures import token_curves

    panels = budget_panels(rows, metric, band)
    if not panels:
        return
    better = "lower is better" if lower_is_better else "higher is better"
    figure = token_curves(sweep_dir / BUDGET_FIGURE, panels, ylabel=f"final validation {metric} ({better})",
                          title=f"Final validation {metric} against the training budget, every recipe",
                          band_note="band: " + ("min-max" if band == "minmax" else "mean ± 1 std") + " over seeds",
                          xlabel="training tokens (the whole budget)", log_x=True, zoom_late=False)
    data = sweep_dir / Path(BUDGET_FIGURE).with_suffix(".json").name
    write_atomic(data, lambda tmp: tmp.write_text(json.dumps({"metric": metric, "panels": panels}, indent=1)))
    if logger is not None:
        logger.log_image("sweep/bakeoff_budget", str(figure))
