"""Table (markdown) and figure of a compression sweep: loss (or the task's headline metric)
before pruning, right after it and after fine-tuning, per pruner and sparsity; failed jobs are
listed with their errors.

    python scripts/sweep_table.py outputs/sweeps/paper_lm [--figure fig3.png]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from swp.analysis.sweep_summary import collect, headline_metric  # noqa: E402


def load(sweep: Path) -> tuple[list[dict], list[tuple[str, dict]]]:
    """Finished jobs' results and failed jobs' errors, gathered as the sweep summary does."""
    rows = collect(sweep)
    done = [r for r in rows if r["status"] == "ok"]
    failed = [(r["job"], {"type": r["error_type"], "error": r["error"]}) for r in rows if r["status"] != "ok"]
    return done, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path)
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args()
    done, failed = load(args.sweep)
    if not done:
        raise SystemExit(f"error: no finished job under {args.sweep}")
    m = headline_metric(done)
    done.sort(key=lambda r: (r["target_sparsity"] if r["target_sparsity"] is not None else r["sparsity"], r["pruner"]))
    print(f"| target sparsity | pruner | measured sparsity | dense {m} | pruned {m} | fine-tuned {m} |")
    print("|---|---|---|---|---|---|")
    for r in done:
        print(f"| {r['target_sparsity']} | {r['pruner']} | {r['sparsity']:.3f} | {r[f'dense_val_{m}']:.4f} | "
              f"{r[f'pruned_val_{m}']:.4f} | {r[f'val_{m}']:.4f} |")
    for name, e in failed:
        print(f"\nfailed: {name}: {e['type']}: {e['error']}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        series = defaultdict(list)
        for r in done:
            series[r["pruner"]].append(r)
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, (key, title) in zip(axes, ((f"pruned_val_{m}", "right after pruning"), (f"val_{m}", "after fine-tuning"))):
            for pruner, rows in sorted(series.items()):
                ax.plot([100 * r["sparsity"] for r in rows], [r[key] for r in rows], marker="o", label=pruner)
            ax.axhline(done[0][f"dense_val_{m}"], color="gray", ls="--", lw=1, label="dense")
            ax.set_xlabel("compression (% of prunable weights)")
            ax.set_title(title)
        axes[0].set_ylabel(f"validation {m}")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
