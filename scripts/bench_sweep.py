"""Wall time of a 5-point compression sweep with the shared dense phase against without it.

Both sweeps run in this one process, one torch thread, points interleaved (no-cache point i,
then cache point i) so a busy machine slows both alike. Each point is the real `run(cfg)` on
the CPU default (gpt_tiny on Shakespeare), with a shorter schedule than `schedule=paper` so the
benchmark takes minutes (same 5:1 dense:fine-tune ratio as the default 1500:300). Wall time is
the figure asked for; CPU time of this process is printed beside it because on a shared machine
the load can change between the cache arm's one expensive point and the rest.

    python scripts/bench_sweep.py [--train-steps 200 --finetune-steps 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "disabled")

from swp.cli import run
from swp.config import compose_run_config

POINTS = (0.1, 0.3, 0.5, 0.7, 0.9)


def point_config(overrides: list[str], out: Path):
    return compose_run_config(overrides, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--finetune-steps", type=int, default=40)
    ap.add_argument("--pruner", default="swp")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    common = [
        f"pruner={args.pruner}",
        f"schedule.train_steps={args.train_steps}",
        f"schedule.finetune_steps={args.finetune_steps}",
        f"schedule.track_every={max(1, args.train_steps // 100)}",
        "schedule.warmup_steps=20",
        "schedule.finetune_warmup_steps=4",
        "schedule.eval_every=0",
        "threads=1",
        "progress=false",
    ]
    seconds = {"without": 0.0, "with": 0.0}
    cpu = {"without": 0.0, "with": 0.0}
    print(f"{'sparsity':>8} | {'no cache s':>10} | {'cache s':>8} | cache | val_loss equal")
    for s in POINTS:
        times, losses, status = {}, {}, None
        for arm, extra in (
            ("without", ["dense_cache.enabled=false"]),
            ("with", ["dense_cache.enabled=true", f"dense_cache.dir={work / 'cache'}"]),
        ):
            cfg = point_config(common + extra + [f"target_sparsity={s}"], work / arm / str(s))
            t0, c0 = time.perf_counter(), time.process_time()
            results = run(cfg)
            times[arm] = time.perf_counter() - t0
            seconds[arm] += times[arm]
            cpu[arm] += time.process_time() - c0
            losses[arm] = results["val_loss"]
            status = results["dense_cache"]
        print(
            f"{s:>8} | {times['without']:>10.1f} | {times['with']:>8.1f} | {status:>5} | "
            f"{losses['with'] == losses['without']}",
            flush=True,
        )
    ratio = seconds["with"] / seconds["without"]
    print(
        f"\n5-point sweep, {args.train_steps} dense + {args.finetune_steps} fine-tune steps per point: "
        f"without cache {seconds['without']:.1f} s, with cache {seconds['with']:.1f} s, "
        f"ratio {ratio:.3f} (target <= 0.35); "
        f"CPU time {cpu['without']:.1f} s vs {cpu['with']:.1f} s, ratio {cpu['with'] / cpu['without']:.3f}"
    )


if __name__ == "__main__":
    main()
