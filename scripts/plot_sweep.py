"""Rebuilds a sweep's summary from its folder, after the fact or after an aborted sweep.

    python scripts/plot_sweep.py outputs/multirun/2026-11-29/08-00-00 [--wandb]

Writes sweep_results.csv (one row per job), sweep_aggregate.csv (mean / std / n over seeds per
pruner and sparsity), fig3_compression_loss.png (fig3_compression_ppl.png for token LMs,
fig4_compression_mae.png for the price task) and its data (.json, one entry per drawn line)
into the sweep folder; --wandb also logs the summary run (offline unless WANDB_MODE or your W&B
settings say otherwise).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from swp.analysis.sweep_summary import job_folders, summarize_sweep, sweep_logger


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the Hydra sweep folder (holds the numbered job folders)")
    parser.add_argument("--wandb", action="store_true", help="also log a W&B summary run of the sweep's group")
    parser.add_argument("--project", default="swp", help="W&B project (default: swp)")
    parser.add_argument("--group", default=None, help="W&B group (default: the sweep folder's name, as its jobs)")
    parser.add_argument("--band", choices=("std", "minmax"), default="std",
                        help="band per pruner: mean ± 1 std (default) or min-max over seeds")
    parser.add_argument("--log-y", choices=("auto", "on", "off"), default="auto",
                        help="log-scale y axis (auto: for perplexity)")
    args = parser.parse_args(argv)
    log_y = {"auto": None, "on": True, "off": False}[args.log_y]
    if not args.sweep_dir.is_dir() or not job_folders(args.sweep_dir):
        print(f"error: {args.sweep_dir} is not a sweep folder with job folders in it", file=sys.stderr)
        return 2
    logger = None
    if args.wandb:
        from functools import partial

        from swp.logging.wandb_logger import WandbLogger

        factory = partial(
            WandbLogger,
            project=args.project,
            group=args.group,
            name=f"sweep {args.sweep_dir.name}",
            job_type="sweep_summary",
        )
        logger = sweep_logger(factory, args.sweep_dir, overrides=[])
    ok = False
    try:
        result = summarize_sweep(args.sweep_dir, logger, band=args.band, log_y=log_y)
        ok = True
    finally:
        if logger is not None:
            logger.finish(ok)
    print(
        f"{result['ok']}/{result['jobs']} jobs ok -> {result['csv']}"
        + (f", {result['figure']}" if result["figure"] else " (no successful job to plot)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
