"""Tables of a compression sweep (markdown): every job, the mean / std / n over seeds per pruner
and sparsity point, and with --compare A B the paired difference between two pruners per point.
A bake-off sweep (jobs with a recipe) also gets its table: every recipe's final value against
the best one-shot recipe of the point, paired by seed (swp.analysis.bakeoff).

    python scripts/sweep_table.py outputs/sweeps/paper_lm [--compare swp magnitude] [--stage final|pruned]
        [--figure fig3.png] [--band std|minmax]

The metric is the sweep's headline metric (results.json ``headline_metric``: loss, ppl or mae).
--compare pairs the two pruners' jobs of the same seed at the same point, so the seed's own
luck (its dense model, its batches) cancels: diff = A - B per seed, then the mean diff, the
sample std of the paired diffs, n, and a 95% t interval of the mean diff. A difference is
called "beyond the seed spread" when that interval excludes 0 (|mean| > t * std / sqrt(n)).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swp.analysis.bakeoff import final_table, is_bakeoff, table_markdown
from swp.analysis.stats import paired
from swp.analysis.sweep_summary import (
    BANDS,
    CONTROL,
    aggregate,
    collect,
    curve_label,
    headline_metric,
    lower_is_better,
    variant_keys,
)


def load(sweep: Path) -> tuple[list[dict], list[tuple[str, dict]]]:
    """Finished jobs' results and failed jobs' errors, gathered as the sweep summary does."""
    rows = collect(sweep)
    done = [r for r in rows if r["status"] == "ok"]
    failed = [(r["job"], {"type": r["error_type"], "error": r["error"]}) for r in rows if r["status"] != "ok"]
    return done, failed


def _fmt(v, digits=4):
    return "" if v is None else f"{v:.{digits}f}"


def paired_differences(rows: list[dict], a: str, b: str, metric: str, stage: str = "final") -> list[dict]:
    """Per sweep point: curve `a` minus curve `b`, paired by seed (``none``, the control, has one
    value per seed and is compared at every point).

    Returns rows {point, n, seeds, mean, std, lo, hi, beyond}: the mean of the paired
    differences, their sample std (None for n = 1), the 95% t interval and whether it excludes 0.
    """
    key = f"{'pruned_val_' if stage == 'pruned' else 'val_'}{metric}"
    keys = variant_keys(rows)
    values: dict = {}
    for r in rows:
        if r.get("status") == "ok" and r.get(key) is not None:
            if r.get("pruner") == CONTROL:
                point = None  # the control: one value per seed, compared at every point
            else:
                point = r["target_sparsity"] if r.get("target_sparsity") is not None else r.get("prune_rate")
            values.setdefault((curve_label(r, keys), point), {})[r.get("seed")] = float(r[key])
    out = []
    points = sorted({p for (_, p) in values if p is not None})
    for p in points:
        va, vb = values.get((a, p)) or values.get((a, None), {}), values.get((b, p)) or values.get((b, None), {})
        diff = paired(va, vb)
        if diff is not None:
            out.append({"point": p} | diff)
    return out


def print_jobs(done: list[dict], m: str) -> None:
    def order(r):
        point = r["target_sparsity"] if r.get("target_sparsity") is not None else r["sparsity"]
        return r.get("pruner") == CONTROL, point, str(r["pruner"]), str(r.get("seed"))

    done = sorted(done, key=order)
    print(f"| target sparsity | pruner | seed | measured sparsity | dense {m} | pruned {m} | fine-tuned {m} |")
    print("|---|---|---|---|---|---|---|")
    for r in done:
        print(f"| {r['target_sparsity']} | {r['pruner']} | {r.get('seed')} | {r['sparsity']:.3f} | "
              f"{r[f'dense_val_{m}']:.4f} | "
              f"{r[f'pruned_val_{m}']:.4f} | {r[f'val_{m}']:.4f} |")


def print_aggregate(aggs: list[dict], m: str) -> None:
    print(f"| curve | target | n | sparsity | dense {m} | pruned {m} (mean ± std) | fine-tuned {m} (mean ± std) "
          "| fine-tuned min-max |")
    print("|---|---|---|---|---|---|---|---|")
    for a in aggs:
        def ms(k):
            mean, std = a.get(f"{k}_mean"), a.get(f"{k}_std")
            return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        point = "control" if a["pruner"] == CONTROL else a["point"]
        print(f"| {a['curve']} | {point} | {a['n']} | {a['sparsity_mean']:.3f} | {ms(f'dense_val_{m}')} | "
              f"{ms(f'pruned_val_{m}')} | "
              f"{ms(f'val_{m}')} | {a[f'val_{m}_min']:.4f}-{a[f'val_{m}_max']:.4f} |")


def print_compare(rows: list[dict], a: str, b: str, m: str, stage: str) -> list[dict]:
    diffs = paired_differences(rows, a, b, m, stage)
    better = "lower" if lower_is_better(rows) else "higher"
    when = "right after pruning" if stage == "pruned" else "after fine-tuning"
    print(f"\n{a} - {b}, {when} ({m}; {better} is better; "
          "paired by seed; 95% t interval)\n")
    print("| target | n | mean diff | std of paired diffs | 95% interval | beyond seed spread | better |")
    print("|---|---|---|---|---|---|---|")
    for d in diffs:
        winner = ""
        if d["beyond"]:
            winner = a if (d["mean"] < 0) == (better == "lower") else b
        interval = f"[{_fmt(d['lo'])}, {_fmt(d['hi'])}]" if d["lo"] is not None else "n = 1"
        print(f"| {d['point']} | {d['n']} | {d['mean']:+.4f} | {_fmt(d['std'])} | {interval} | "
              f"{'' if d['beyond'] is None else ('yes' if d['beyond'] else 'no')} | {winner} |")
    if not diffs:
        print(f"(no point has both {a} and {b} with the same seed)")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), action="append", default=[],
                    help="paired difference A - B per point (curve names as in sweep_aggregate.csv); repeatable")
    ap.add_argument("--stage", choices=("final", "pruned"), default="final",
                    help="compare after fine-tuning (final) or right after pruning")
    ap.add_argument("--jobs", action="store_true", help="also print every job")
    ap.add_argument("--figure", type=Path, help="also draw the compression figure (and its .json data) here")
    ap.add_argument("--band", choices=tuple(BANDS), default="std")
    ap.add_argument("--log-y", action="store_true", help="log-scale y axis in --figure")
    args = ap.parse_args(argv)
    if not args.sweep.is_dir():
        print(f"error: {args.sweep} is not a folder (give the sweep folder that holds the job folders)",
              file=sys.stderr)
        return 2
    done, failed = load(args.sweep)
    if not done:
        first = f" ({len(failed)} failed, e.g. {failed[0][0]}: {failed[0][1]['error']})" if failed else ""
        print(f"error: no finished job under {args.sweep}{first}", file=sys.stderr)
        return 2
    m = headline_metric(done)
    if args.jobs:
        print_jobs(done, m)
        print()
    aggs = aggregate(done, m)
    print_aggregate(aggs, m)
    if is_bakeoff(done):  # final values against the best one-shot recipe of each point
        print("\n" + table_markdown(final_table(done, m, lower_is_better(done)), m, lower_is_better(done)))
    for a, b in args.compare:
        print_compare(done, a, b, m, args.stage)
    for name, e in failed:
        print(f"\nfailed: {name}: {e['type']}: {e['error']}")
    if args.figure:
        import json

        from swp.analysis.figures import compression_curve
        from swp.analysis.sweep_summary import _METRIC_NAMES, figure_lines

        lines = figure_lines(aggs, done, m, args.band)
        ylabel = _METRIC_NAMES.get(m, f"validation {m}")
        compression_curve(args.figure, lines, ylabel=ylabel, title=f"Compression versus {ylabel}",
                          band_note=BANDS[args.band], log_y=args.log_y)
        data = {"metric": m, "band": args.band, "lines": lines}
        args.figure.with_suffix(".json").write_text(json.dumps(data, indent=1))
        print(f"\nfigure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
