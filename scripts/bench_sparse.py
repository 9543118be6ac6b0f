"""Dense against sparse inference, side by side: where does sparsity make a model faster?

    python scripts/bench_sparse.py                         # CPU part; CUDA part if a GPU is present
    python scripts/bench_sparse.py --shapes 4096x4096,11008x4096 --batches 1,16,256,4096
    python scripts/bench_sparse.py --run outputs/<2:4 run>  # also the fine-tuned 2:4 model (CUDA)

CUDA: a Linear layer with a 2:4 weight, dense `F.linear` against PyTorch's semi-structured
sparse kernels (`to_sparse_semi_structured`, fp16), latency and throughput per batch size; with
--run, the same for the whole fine-tuned 2:4 model. Without CUDA it prints `skipped: no CUDA`.
CPU (always): the same matmul with a dense weight, the weight at 60% unstructured zeros and
at 2:4 zeros (both still on the dense kernel), and as a CSR sparse tensor (torch.sparse.mm),
to show what zeros alone buy on a CPU. Ratios are against the dense weight, measured
interleaved in one process (`threads` torch threads).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch
from torch.nn import functional as F

from swp.pruning.nm import nm_keep_mask


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _shapes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(d) for d in s.split("x")) for s in text.split(",") if s]


def sparse_weights(out_f: int, in_f: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """One random weight as dense, with 60% unstructured zeros (smallest |w|) and as 2:4."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, generator=g) / in_f**0.5
    cut = w.abs().flatten().kthvalue(int(0.6 * w.numel())).values
    return {
        "dense": w,
        "unstructured60": torch.where(w.abs() > cut, w, torch.zeros_like(w)),
        "nm2:4": w * nm_keep_mask(w.abs(), 2, 4),
    }


def _time(fn, repeats: int, sync=lambda: None) -> float:
    """Median seconds of `repeats` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def bench_cpu(shapes, batches, repeats: int) -> list[dict]:
    """Dense kernel with zeros in the weight, and CSR sparse matmul, against the dense weight."""
    rows = []
    for out_f, in_f in shapes:
        ws = sparse_weights(out_f, in_f)
        with warnings.catch_warnings():  # "CSR support is in beta": known, not news
            warnings.simplefilter("ignore")
            csr = ws["unstructured60"].to_sparse_csr()
        for b in batches:
            x = torch.randn(b, in_f)
            fns = {
                "dense": lambda: F.linear(x, ws["dense"]),
                "unstructured60 (dense kernel)": lambda: F.linear(x, ws["unstructured60"]),
                "2:4 (dense kernel)": lambda: F.linear(x, ws["nm2:4"]),
                "unstructured60 CSR (torch.sparse.mm)": lambda: torch.sparse.mm(csr, x.t()),
            }
            # Interleave rounds so drifts in machine load hit every variant alike.
            times = {k: [] for k in fns}
            for _ in range(3):
                for k, fn in fns.items():
                    times[k].append(_time(fn, repeats))
            base = statistics.median(times["dense"])
            for k, ts in times.items():
                t = statistics.median(ts)
                rows.append({"device": "cpu", "shape": f"{out_f}x{in_f}", "batch": b, "variant": k,
                             "ms": 1e3 * t, "rows_per_s": b / t, "speedup": base / t})
    return rows


def bench_cuda_layers(shapes, batches, repeats: int, dtype=torch.float16) -> list[dict]:
    """One Linear: dense F.linear against the 2:4 semi-structured weight, same values."""
    from torch.sparse import to_sparse_semi_structured

    rows = []
    sync = torch.cuda.synchronize
    for out_f, in_f in shapes:
        w = sparse_weights(out_f, in_f)["nm2:4"].to("cuda", dtype)
        ws = to_sparse_semi_structured(w)
        for b in batches:
            x = torch.randn(b, in_f, device="cuda", dtype=dtype)
            err = float((F.linear(x, w) - F.linear(x, ws)).abs().max())
            td = _time(lambda: F.linear(x, w), repeats, sync)
            ts = _time(lambda: F.linear(x, ws), repeats, sync)
            for k, t in (("dense", td), ("2:4 semi-structured", ts)):
                rows.append({"device": "cuda", "shape": f"{out_f}x{in_f}", "batch": b, "variant": k,
                             "ms": 1e3 * t, "rows_per_s": b / t, "speedup": td / t, "max_abs_err": err})
    return rows


def bench_cuda_run(run_dir: Path, batches, repeats: int, dtype=torch.float16) -> list[dict]:
    """The run's fine-tuned 2:4 model: dense forward against semi-structured Linear weights."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from safetensors.torch import load_model

    from swp.export.semi_structured import semi_structured_linears_

    cfg = OmegaConf.load(run_dir / "config.yaml")
    task = instantiate(cfg.dataset)
    model = instantiate(cfg.model, **task.model_kwargs())
    load_model(model, str(run_dir / "model.safetensors"))
    model = model.to("cuda", dtype).eval()
    block = int(cfg.model.block_size)
    vocab = int(task.model_kwargs().get("vocab_size", 2))
    sync = torch.cuda.synchronize
    rows = []
    inputs = {b: torch.randint(0, vocab, (b, block), device="cuda") for b in batches}
    with torch.inference_mode():
        dense_t = {b: _time(lambda: model(inputs[b]), repeats, sync) for b in batches}
    with torch.no_grad():  # outside inference mode: the new weights become ordinary Parameters
        converted = semi_structured_linears_(model)
    if not converted:
        raise SystemExit(f"{run_dir}: no 2:4-sparse Linear weight (run with pruner.nm=[2,4])")
    with torch.inference_mode():
        for b in batches:
            ts = _time(lambda: model(inputs[b]), repeats, sync)
            for k, t in (("dense", dense_t[b]), (f"2:4 semi-structured ({len(converted)} layers)", ts)):
                rows.append({"device": "cuda", "shape": "model", "batch": b, "variant": k,
                             "ms": 1e3 * t, "rows_per_s": b * block / t, "speedup": dense_t[b] / t})
    return rows


def _print(rows: list[dict], unit: str) -> None:
    print(f"{'device':6} {'shape':>12} {'batch':>6}  {'variant':40} {'ms':>10} {unit:>14} {'vs dense':>9}")
    for r in rows:
        print(f"{r['device']:6} {r['shape']:>12} {r['batch']:>6}  {r['variant']:40} {r['ms']:10.4f} "
              f"{r['rows_per_s']:14.0f} {r['speedup']:8.2f}x")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="4096x4096,11008x4096", help="CUDA layer shapes out x in")
    p.add_argument("--batches", default="1,16,256,2048", help="CUDA batch sizes (rows of x)")
    p.add_argument("--cpu-shapes", default="1024x1024", help="CPU layer shapes out x in")
    p.add_argument("--cpu-batches", default="1,16,256", help="CPU batch sizes")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", type=Path, default=None, help="a run folder with a 2:4 model (CUDA part)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU part")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"cpu": [], "cuda": [], "cuda_skipped": None}
    if not args.no_cpu:
        print(f"CPU, {args.threads} thread(s): zeros in a weight on the dense kernel, and CSR")
        out["cpu"] = bench_cpu(_shapes(args.cpu_shapes), _ints(args.cpu_batches), args.repeats)
        _print(out["cpu"], "rows/s")
    if not torch.cuda.is_available():
        out["cuda_skipped"] = "no CUDA"
        print("CUDA 2:4 semi-structured: skipped: no CUDA")
        return out
    print(f"CUDA ({torch.cuda.get_device_name()}), fp16: dense against 2:4 semi-structured")
    out["cuda"] = bench_cuda_layers(_shapes(args.shapes), _ints(args.batches), args.repeats)
    _print(out["cuda"], "rows/s")
    if args.run is not None:
        model_rows = bench_cuda_run(args.run, _ints(args.batches), args.repeats)
        _print(model_rows, "tokens/s")
        out["cuda"] += model_rows
    return out


if __name__ == "__main__":
    main()
