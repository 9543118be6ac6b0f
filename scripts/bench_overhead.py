"""Training-step cost of SWP tracking and of mask enforcement, as ratios to plain training.

The loops are the real `train_phase` on the same model and data, interleaved round by round
so machine noise hits all of them alike; the ratio of medians is reported. By default the clock
is this process's CPU time on one thread, which other processes on a shared machine barely
move; `--clock wall --threads 2` measures wall time instead.

    python scripts/bench_overhead.py [--rounds 9] [--steps 40] [--threads 1] [--clock process]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from swp.data.text import shakespeare_text
from swp.logging.base import NullLogger
from swp.models.gpt import GPT
from swp.pruners.swp import SWPPruner
from swp.pruning.masks import MaskSet
from swp.tasks.char_lm import CharLMTask
from swp.training.loop import make_optimizer, train_phase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=40, help="steps per timed segment")
    ap.add_argument("--track-every", type=int, default=15, help="the default schedule's interval")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["process", "wall"], default="process")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "process" else time.perf_counter
    torch.manual_seed(0)

    task = CharLMTask(shakespeare_text(max_chars=1_000_000), args.block_size, args.batch_size)
    model = GPT(task.vocab_size, args.block_size, args.n_layer, 4, args.n_embd)
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.99))
    pruner = SWPPruner(model)
    pruner.observe()
    masks = MaskSet(pruner.params, pruner.masks(0.6)[0])  # masks exist but are applied only in "masked"
    gen = torch.Generator().manual_seed(0)

    def segment(mode: str) -> float:
        every = 1 if mode == "track_every_step" else args.track_every

        def track(step: int) -> None:
            if (step + 1) % every == 0:
                pruner.observe()

        t0 = clock()
        train_phase(model, task, opt, phase="bench", steps=args.steps, lr_at=lambda s: 1e-3,
                    generator=gen, device=torch.device("cpu"), autocast=nullcontext, logger=NullLogger(),
                    grad_clip=1.0, log_every=10,
                    masks=masks if mode == "masked" else None,
                    after_step=track if mode.startswith("track") else None)
        return (clock() - t0) / args.steps

    modes = ["plain", "tracking", "masked", "track_every_step"]
    segment("plain")  # warm-up: allocator, kernels, optimizer state
    times = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            times[m].append(segment(m))
    base = statistics.median(times["plain"])

    # The added work alone, timed over many repetitions: far less noisy than differences of steps.
    def per_call(fn, reps: int = 50) -> float:
        t0 = clock()
        for _ in range(reps):
            fn()
        return (clock() - t0) / reps

    def masked_extra() -> None:
        for p in pruner.params.values():
            p.grad = torch.ones_like(p)
        masks.mask_grads()
        masks.enforce()

    observe_s, enforce_s = per_call(pruner.observe), per_call(masked_extra)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {n_params/1e6:.2f}M params, batch {args.batch_size}x{args.block_size}, "
          f"{args.threads} threads, {args.clock} clock, {args.rounds} rounds x {args.steps} steps per mode")
    print(f"plain step: {base*1e3:.1f} ms (median)")
    for m in modes[1:]:
        label = {"tracking": f"SWP tracking every {args.track_every} steps",
                 "masked": "masks enforced every step (grads + weights)",
                 "track_every_step": "SWP tracking at every step (worst case)"}[m]
        print(f"{label}: ratio {statistics.median(times[m]) / base:.4f}")
    print(f"one tracking point: {observe_s*1e3:.2f} ms = {observe_s/base:.2%} of a step; "
          f"every {args.track_every} steps: {observe_s/base/args.track_every:.3%} per step")
    print(f"mask enforcement per step: {enforce_s*1e3:.2f} ms = {enforce_s/base:.2%} of a step")


if __name__ == "__main__":
    main()
