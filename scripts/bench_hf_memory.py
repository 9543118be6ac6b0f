"""SWP's tracked state against the model's own memory, for Hugging Face causal LMs.

Part 1 measures, on tiny random Llama / GPT-2 models (CPU), the bytes of the tracked state for
each state_dtype / state_device setting and the cost of one tracking point relative to one
training step (side by side in this process). Part 2 builds real architectures (GPT-2 124M,
Llama-2-7B) on the meta device, so their prunable tensors are counted exactly without any
memory or download, and prints the arithmetic of the GPU memory a fine-tune-and-prune run needs.

    python scripts/bench_hf_memory.py            (about 20 s on one CPU thread)
    python scripts/bench_hf_memory.py prune-peak (peak host memory of the pruning step)
    python scripts/bench_hf_memory.py rate-search (time of the target_sparsity search, old vs new)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch

from swp.infra.io import unique_parameters
from swp.models.hf_causal_lm import hf_causal_lm
from swp.pruners.select import prunable_parameters
from swp.pruners.swp import SWPPruner
from swp.testing.hf_tiny import GPT2, LLAMA, build_model_folder, build_tokenizer, write_corpus

GiB = 2**30


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_tiny(folder: str, label: str, reps: int = 20) -> None:
    print(f"\n{label}: tracked state vs model (measured)")
    print(f"{'weights':>8} {'state_dtype':>11} {'state_device':>12} {'model B':>9} {'state B':>9} "
          f"{'state/model':>11} {'point/step':>10}")
    for weights in ("float32", "bfloat16"):
        for state_dtype, state_device in (("float32", None), ("float32", "cpu")):  # 16-bit states are rejected
            torch.manual_seed(0)
            model = hf_causal_lm(name_or_path=folder, dtype=weights, device="cpu")
            pruner = SWPPruner(model, state_dtype=state_dtype, state_device=state_device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            x = torch.randint(model.config.vocab_size, (8, 64))
            step_s = point_s = 0.0
            for _ in range(reps):  # step and tracking point interleaved, timed side by side
                t0 = time.perf_counter()
                model(input_ids=x, labels=x, use_cache=False).loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                t1 = time.perf_counter()
                pruner.observe()
                t2 = time.perf_counter()
                step_s, point_s = step_s + t1 - t0, point_s + t2 - t1
            model_b = nbytes(unique_parameters(model))
            state_b = pruner.state_bytes()
            print(f"{weights:>8} {state_dtype:>11} {str(state_device):>12} {model_b:>9} {state_b:>9} "
                  f"{state_b / model_b:>11.3f} {point_s / step_s:>10.3f}")


def arithmetic(name: str, fields: dict) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(fields)
    cfg = AutoConfig.for_model(fields.pop("model_type"), **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    params = unique_parameters(model)
    total = sum(p.numel() for p in params)
    pruned = sum(p.numel() for p in prunable_parameters(model).values())
    w = 2 * total  # bf16 weights
    print(f"\n{name} on the meta device: {total / 1e9:.3f}B parameters, {pruned / 1e9:.3f}B prunable "
          f"({pruned / total:.1%}); bf16 weights {w / GiB:.1f} GiB")
    rows = [
        ("bf16 weights", w),
        ("grads (bf16)", 2 * total),
        ("AdamW m, v (bf16, torch keeps the param dtype)", 4 * total),
        ("SWP state, state_dtype=float32 on GPU", 4 * pruned),
        ("SWP state, state_device=cpu", 0),
        ("MaskSet in recovery (1-bit keep + bf16 multiplier)", pruned / 8 + 2 * pruned),
        ("MaskSet after one-shot pruning (1-bit keep only)", pruned / 8),
    ]
    for label, b in rows:
        print(f"  {label:<52} {b / GiB:7.1f} GiB  ({b / w:.2f} x weights)")
    train = 8 * total
    print(f"  => dense fine-tuning (weights+grads+AdamW, no activations): {train / GiB:.1f} GiB; "
          f"+ float32 state on GPU: {(train + 4 * pruned) / GiB:.1f} GiB (+{4 * pruned / train:.0%}); "
          f"state on CPU: +0 GiB on GPU, {4 * pruned / GiB:.1f} GiB of host RAM")


def prune_step_peak() -> None:
    """Peak host memory of the pruning step (target-sparsity search + masks) per pruned weight,
    SWP state kept on the CPU; run in a fresh process so ru_maxrss starts low."""
    import resource

    torch.manual_seed(0)
    model = hf_causal_lm(config=dict(model_type="llama", hidden_size=1024, intermediate_size=2816,
                                     num_hidden_layers=4, num_attention_heads=8, vocab_size=256),
                         dtype="bfloat16", device="cpu")
    pruner = SWPPruner(model, state_dtype="float32", state_device="cpu")
    for _ in range(3):
        pruner.observe()
    n = sum(p.numel() for p in pruner.params.values())
    kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731  (bytes)
    base = kib()
    rate = pruner.rate_for_sparsity(0.5)
    keep, _ = pruner.masks(rate)
    peak = kib()
    print(f"pruning step, {n / 1e6:.1f}M pruned weights, fp32 state on CPU: peak host memory "
          f"+{(peak - base) / 2**20:.0f} MiB = {(peak - base) / n:.1f} bytes per pruned weight "
          f"(=> {(peak - base) / n * 6.476e9 / GiB:.0f} GiB for Llama-2-7B's 6.48B)")


def rate_search_speed(reps: int = 2) -> None:
    """target_sparsity's per-tensor search against concatenating every rate and taking topk
    (the previous implementation), timed side by side on the same random scores."""
    import math

    from swp.pruning.threshold import _critical_rates, prune_rate_for_sparsity, spreads

    def concatenated(scores, spread, target):
        rates = torch.cat([_critical_rates(s, spread[n]) for n, s in scores.items()])
        k = int(round(target * rates.numel()))
        top = torch.topk(rates, k + 1, largest=False).values
        lo, hi = float(top[k - 1]), float(top[k])
        return lo + (hi - lo) / 2 if math.isfinite(hi) else lo * 2 + 1.0

    g = torch.Generator().manual_seed(0)
    scores = {f"l{i}": torch.randn(2816, 1024, generator=g).abs() for i in range(12)}
    spread = spreads(scores, "layer")
    for _ in range(reps):
        t0 = time.perf_counter()
        a = concatenated(scores, spread, 0.5)
        t1 = time.perf_counter()
        b = prune_rate_for_sparsity(scores, spread, 0.5)
        t2 = time.perf_counter()
        print(f"{sum(s.numel() for s in scores.values()) / 1e6:.1f}M rates: concatenated {t1 - t0:.2f}s, "
              f"per-tensor {t2 - t1:.2f}s, ratio {(t2 - t1) / (t1 - t0):.2f}, same rate: {a == b}")


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1:] == ["prune-peak"]:
        prune_step_peak()
        return
    if sys.argv[1:] == ["rate-search"]:
        rate_search_speed()
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_corpus(root / "text")
        tok = build_tokenizer(root / "tok", files["train"])
        measure_tiny(build_model_folder(root / "llama", LLAMA, tok), "tiny Llama (GQA, untied head)")
        measure_tiny(build_model_folder(root / "gpt2", GPT2, tok), "tiny GPT-2 (Conv1D, tied head)")
    # Public config values of the two architectures (no download: built on the meta device).
    arithmetic("GPT-2 (124M)", dict(model_type="gpt2", n_embd=768, n_layer=12, n_head=12, vocab_size=50257,
                                    n_positions=1024))
    arithmetic("Llama-2-7B", dict(model_type="llama", hidden_size=4096, intermediate_size=11008,
                                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                                  vocab_size=32000, max_position_embeddings=4096))


if __name__ == "__main__":
    main()
