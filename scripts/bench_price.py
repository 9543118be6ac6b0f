"""The price experiment's figures, measured side by side on this machine.

    python scripts/bench_price.py                  # start-up, rendering, and the full CLI run
    python scripts/bench_price.py --skip-cli       # only the cheap parts (seconds)

Prints: the diamonds task's start-up time (table, texts, vocabulary, validation renderings),
rendering cost per stone, and for `python train.py experiment=price pruner=swp prune_rate=0.6`
its wall time (threads as torch's default unless --threads), the process CPU time, and the
final, dense and mean-baseline MAE with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cli", action="store_true", help="skip the full training run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the run (default: torch's)")
    ap.add_argument("--extra", nargs="*", default=[], help="more overrides for the run")
    args = ap.parse_args()

    import numpy as np

    from swp.data.diamonds import diamond_examples
    from swp.tasks.price import PriceTask

    t0 = time.perf_counter()
    task = PriceTask(diamond_examples(), batch_size=64)
    t1 = time.perf_counter()
    task.examples.images[task.val_rows.numpy()]  # what the first evaluation renders
    t2 = time.perf_counter()
    rows = np.arange(64, 64 * 65)
    task.examples.images[rows]
    t3 = time.perf_counter()
    print(f"diamonds task start-up: {t1 - t0:.2f} s (53,940 rows, texts, vocabulary of {len(task.vocab)})")
    print(f"rendering the {len(task.val_rows)} validation stones: {t2 - t1:.2f} s "
          f"({(t3 - t2) / len(rows) * 1e6:.0f} us per stone in batches of 64)")
    if args.skip_cli:
        return
    out = Path(tempfile.mkdtemp(prefix="bench-price-"))
    cmd = [
        sys.executable,
        "train.py",
        "experiment=price",
        "pruner=swp",
        "prune_rate=0.6",
        f"output_dir={out}",
        "progress=false",
    ]
    cmd += ([f"threads={args.threads}"] if args.threads else []) + args.extra
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env=os.environ | {"WANDB_MODE": "disabled"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = json.loads((out / "results.json").read_text())
    print(
        f"\n{' '.join(cmd[1:5])}: wall {wall:.0f} s, CPU {cpu:.0f} s, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    print(
        f"val MAE (USD): dense {r['dense_val_mae']:.0f} | pruned {r['pruned_val_mae']:.0f} | "
        f"final {r['val_mae']:.0f} | "
        f"mean baseline {r['baseline_val_mae']:.0f}"
    )
    print(
        f"baseline / dense = {r['baseline_val_mae'] / r['dense_val_mae']:.2f}x, baseline / final = "
        f"{r['baseline_val_mae'] / r['val_mae']:.2f}x at sparsity {r['sparsity']:.1%} of the prunable weights"
    )


if __name__ == "__main__":
    main()
