"""What does energy accounting cost? The same small run with energy=none and energy=codecarbon,
interleaved in one process, wall and CPU seconds side by side.

    python scripts/bench_energy.py                 # 3 rounds of a ~1 s run
    python scripts/bench_energy.py --rounds 5 schedule.train_steps=300

The first codecarbon tracker of a process probes the hardware (about 1.5 s wall here, mostly
waiting); later trackers reuse codecarbon's in-process cache, so that cost is paid once per
run process (once per sweep job).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SMALL = [
    "model.n_layer=2", "model.n_head=2", "model.n_embd=64", "model.block_size=32",
    "dataset.text.max_chars=200000", "dataset.batch_size=8", "dataset.eval_batches=4",
    "schedule.train_steps=100", "schedule.track_every=10", "schedule.finetune_steps=30",
    "schedule.warmup_steps=5", "schedule.finetune_warmup_steps=2", "schedule.eval_every=0",
    "threads=1", "progress=false", "logger=none",
]


def _cfg(overrides: list[str], out: Path):
    from swp.config import compose_run_config

    return compose_run_config(overrides, out)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("overrides", nargs="*", help="extra config overrides")
    args = p.parse_args(argv)
    from swp.cli import run

    tmp = Path(tempfile.mkdtemp(prefix="bench-energy-"))
    times: dict[str, list[tuple[float, float]]] = {"none": [], "codecarbon": []}
    first = None
    for i in range(args.rounds + 1):  # round 0 pays codecarbon's one-off hardware probe
        # Round 0: none first, so the one-off costs of a process (imports, data) fall on it
        # and codecarbon's first run carries only its own hardware probe.
        for energy in ("none", "codecarbon") if i == 0 else ("codecarbon", "none"):
            cfg = _cfg(SMALL + args.overrides + [f"energy={energy}"], tmp / f"{energy}{i}")
            w, c = time.perf_counter(), time.process_time()
            run(cfg)
            sample = (time.perf_counter() - w, time.process_time() - c)
            if i == 0:  # warm-up round, not counted; keep codecarbon's first-run cost
                if energy == "codecarbon":
                    first = sample
                continue
            times[energy].append(sample)
    med = {k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)) for k, v in times.items()}
    print(f"\n{'energy':12} {'wall s':>8} {'cpu s':>8}   (median of {args.rounds} interleaved rounds)")
    for k, (w, c) in med.items():
        print(f"{k:12} {w:8.3f} {c:8.3f}")
    dw, dc = med["codecarbon"][0] - med["none"][0], med["codecarbon"][1] - med["none"][1]
    print(f"overhead per run: {dw:+.3f} s wall ({med['codecarbon'][0] / med['none'][0]:.3f}x), {dc:+.3f} s CPU")
    print(f"codecarbon's first run in a process: {first[0] - med['codecarbon'][0]:+.3f} s wall, "
          f"{first[1] - med['codecarbon'][1]:+.3f} s CPU more than its later runs (hardware probe)")
    return {"median": med, "first": first}


if __name__ == "__main__":
    main()
