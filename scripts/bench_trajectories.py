"""Cost of recording weight trajectories, relative to training, measured side by side.

    python scripts/bench_trajectories.py [--model gpt_tiny] [--steps 200] [--track-every 20]

Runs the real dense training phase (real config, task, model, SWP pruner) twice per repeat,
interleaved: tracking with SWP only, and SWP plus the trajectory recorder. Prints the time of
each, their ratio, and the recorder's own time (summed over its calls) as a share of the phase.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from swp.analysis.trajectories import TrajectoryRecorder
from swp.logging.base import NullLogger
from swp.training.loop import make_optimizer, train_phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt_tiny")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--track-every", type=int, default=20)
    parser.add_argument("--per-tensor", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. dataset.batch_size=8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={args.model}", "pruner=swp", *args.overrides])
    task = instantiate(cfg.dataset)
    times = {"swp": [], "swp+trajectories": []}
    record_s = []
    for _ in range(args.repeats):
        for variant in times:
            torch.manual_seed(0)
            model = instantiate(cfg.model, **task.model_kwargs())
            pruner = instantiate(cfg.pruner)(model=model)
            recorder = TrajectoryRecorder(pruner.params, args.per_tensor, 0) if variant != "swp" else None
            spent = [0.0]

            def track(step: int) -> None:
                if (step + 1) % args.track_every == 0:
                    pruner.observe()
                    if recorder is not None:
                        t0 = time.perf_counter()
                        recorder.record(step + 1)
                        spent[0] += time.perf_counter() - t0

            opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.99))
            t0 = time.perf_counter()
            train_phase(
                model, task, opt, phase="train", steps=args.steps, lr_at=lambda s: 1e-3,
                generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                autocast=contextlib.nullcontext, logger=NullLogger(), after_step=track,
            )
            times[variant].append(time.perf_counter() - t0)
            if recorder is not None:
                record_s.append(spent[0])
                sampled = sum(len(i) for i in recorder.indices)
    base, traj = min(times["swp"]), min(times["swp+trajectories"])
    print(f"model={args.model} steps={args.steps} track_every={args.track_every} per_tensor={args.per_tensor} "
          f"({sampled} sampled weights, {len(pruner.params)} tensors) threads={args.threads}")
    print(f"  dense phase, SWP tracking only:        {base:8.3f} s (min of {args.repeats})")
    print(f"  dense phase, SWP + trajectories:       {traj:8.3f} s  ratio {traj / base:.4f}")
    print(f"  recorder's own time / phase time:      {min(record_s):.5f} s / {traj:.3f} s = {min(record_s) / traj:.4%}")


if __name__ == "__main__":
    main()
