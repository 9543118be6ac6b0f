"""The GPU paths in one command, one table: what has to work on a GPU before a cluster run.

    bash scripts/gpu_check.sh                        # on one GPU: every step (budget: under 8 minutes)
    bash scripts/gpu_check.sh --dry-run              # the commands, every train.py one composed and validated
    bash scripts/gpu_check.sh --device cpu --quick   # every step at toy size on a CPU (plumbing only)
    bash scripts/gpu_check.sh --only sparse_24,nccl_torchrun

Steps: the paper's LM for a few hundred steps under bf16 autocast; SmolLM2-135M with
``precision=bf16`` through tracked fine-tune, SWP pruning to 50% and a short recovery (with
``recovery=distill_logits`` when that option exists), scored zero-shot on two local lm-eval tasks
on the GPU; dense against 2:4 semi-structured matmuls on SmolLM2's own layer shapes ("no
speed-up" when the kernel is not faster); a one-process torchrun under NCCL (gloo on a CPU).
Each step runs as its own command with a time limit; its log and run folder are kept under
``--out``, and the table is written there too (``gpu_check.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
# SmolLM2-135M's Linear shapes (out x in): q/o, k/v (3 key-value heads of 64), gate/up, down.
SMOLLM2_SHAPES = "576x576,192x576,1536x576,576x1536"
FASTER = 1.05  # a 2:4 speed-up below this is reported as none (timing noise)


@dataclass
class Step:
    """One command of the check: its name, what it shows, the command, how to read its result."""

    name: str
    what: str
    argv: list[str]
    read: Callable[[Path], str]
    timeout_s: int
    overrides: list[str] | None = None  # train.py's overrides (composed and validated by --dry-run)


def train_argv(overrides: list[str], torchrun: bool = False) -> list[str]:
    head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1"] if torchrun else [sys.executable]
    return head + [str(ROOT / "train.py"), *overrides]


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def read_paper_lm(folder: Path) -> str:
    r = _results(folder)
    return (f"val_loss {r['dense_val_loss']:.3f} -> pruned {r['pruned_val_loss']:.3f} -> final {r['val_loss']:.3f}; "
            f"{r['train_tokens_per_s']:.0f} tok/s ({r['precision']}, {r['device']})")


def read_smollm2(folder: Path) -> str:
    r = _results(folder)
    return (f"ppl {r['dense_val_ppl']:.2f} -> pruned {r['pruned_val_ppl']:.2f} -> final {r['val_ppl']:.2f} at "
            f"{r['sparsity']:.1%}; {r['train_tokens_per_s']:.0f} tok/s ({r['precision']}, {r['device']})")


def read_zeroshot(folder: Path) -> str:
    r = _results(folder)
    return (f"word order acc {r['zeroshot/swp_word_order/acc']:.3f} (chance 0.25); ties acc "
            f"{r['zeroshot/swp_ties/acc']:.3f} (must be 0.250); {r['stage_seconds'].get('zeroshot_final', 0):.1f}s "
            f"on {r['device']}")


def read_sparse(folder: Path) -> str:
    """The best and worst 2:4 speed-up over the layer shapes and batches, or why none."""
    out = json.loads((folder / "bench_sparse.json").read_text())
    rows = [r for r in out["cuda"] if r["variant"] != "dense"]
    if not rows:
        best = max((r for r in out["cpu"] if r["variant"].startswith("2:4")), key=lambda r: r["speedup"])
        return f"CUDA part skipped ({out['cuda_skipped']}); CPU 2:4 on the dense kernel at best {best['speedup']:.2f}x"
    best, worst = max(rows, key=lambda r: r["speedup"]), min(rows, key=lambda r: r["speedup"])
    where = f"{best['shape']}, batch {best['batch']}"
    if best["speedup"] < FASTER:
        return f"no speed-up: 2:4 at best {best['speedup']:.2f}x of dense ({where}), worst {worst['speedup']:.2f}x"
    return f"2:4 at best {best['speedup']:.2f}x dense ({where}), worst {worst['speedup']:.2f}x"


def read_torchrun(folder: Path) -> str:
    r = _results(folder)
    return f"{r['distributed']} world size {r['world_size']} on {r['device']}: val_loss {r['val_loss']:.3f}"


def _smollm2(device: str, quick: bool) -> list[str]:
    """SmolLM2 at GPU size (bf16 autocast over float32 weights), or toy size in fp32 on a CPU
    (bf16 autocast is about 15x slower on these CPUs)."""
    if quick:
        return ["experiment=smollm2_shakespeare", "precision=fp32", "dataset.block_size=32", "dataset.batch_size=2",
                "dataset.max_eval_windows=1", "dataset.eval_batch_size=1", f"device={device}", "progress=false"]
    return ["experiment=smollm2_shakespeare", "precision=bf16", "dataset.block_size=512", "dataset.batch_size=8",
            "dataset.max_eval_windows=64", f"device={device}", "progress=false"]


def _paper_lm(device: str, quick: bool, out: Path) -> list[str]:
    size = (["model.n_layer=2", "model.n_embd=64", "model.n_head=2", "dataset.batch_size=4", "dataset.eval_batches=2",
             "schedule.train_steps=6", "schedule.track_every=2", "schedule.finetune_steps=2", "schedule.warmup_steps=1"]
            if quick else ["schedule.train_steps=300", "schedule.track_every=10", "schedule.finetune_steps=100",
                           "schedule.warmup_steps=20", "dataset.eval_batches=50"])
    return ["experiment=paper_lm", "precision=bf16", f"device={device}", "progress=false", "dense_cache.enabled=false",
            "schedule.eval_every=0", *size, f"output_dir={out / 'paper_lm'}"]


def _swp_recovery(device: str, quick: bool, out: Path) -> list[str]:
    steps = (["schedule.train_steps=2", "schedule.track_every=1", "schedule.finetune_steps=1", "export=none"] if quick
             else ["schedule.train_steps=100", "schedule.track_every=5", "schedule.finetune_steps=50"])
    distill = ["recovery=distill_logits"] if (ROOT / "conf" / "recovery" / "distill_logits.yaml").is_file() else []
    return [*_smollm2(device, quick), "pruner=swp", "target_sparsity=0.5", *steps, *distill,
            f"output_dir={out / 'smollm2_swp'}"]


def _zeroshot(device: str, quick: bool, out: Path, tasks: Path) -> list[str]:
    return [*_smollm2(device, quick), "pruner=wanda", "target_sparsity=0.5", "schedule.train_steps=0",
            "schedule.finetune_steps=0", "export=none", "zeroshot=local", f"zeroshot.include_path={tasks}",
            "zeroshot.tasks=[swp_ties,swp_word_order]", *(["zeroshot.limit=2"] if quick else []),
            f"output_dir={out / 'zeroshot_wanda'}"]


def _torchrun(device: str, out: Path) -> list[str]:
    from swp.testing.tiny import TINY

    backend = "nccl" if device.startswith("cuda") else "gloo"
    return [*TINY, f"device={device}", "distributed=ddp", f"distributed.backend={backend}",
            f"output_dir={out / 'nccl_torchrun'}"]


def build_steps(device: str, quick: bool, out: Path, tasks: Path) -> list[Step]:
    """Every step of the check, in the order they run."""
    sparse = [sys.executable, str(ROOT / "scripts" / "bench_sparse.py"), "--shapes", SMOLLM2_SHAPES,
              "--batches", "1,16,256,2048", "--json", str(out / "sparse_24" / "bench_sparse.json")]
    sparse += (["--cpu-shapes", "192x576", "--cpu-batches", "1,16", "--repeats", "3"] if quick else ["--no-cpu"])
    paper, swp, zs = _paper_lm(device, quick, out), _swp_recovery(device, quick, out), _zeroshot(device, quick, out,
                                                                                                  tasks)
    torchrun = _torchrun(device, out)
    return [
        Step("paper_lm", "paper LM (10.7M), bf16 autocast, prune + fine-tune", train_argv(paper), read_paper_lm, 300,
             paper),
        Step("smollm2_swp", "SmolLM2 bf16: tracked fine-tune, SWP 50%, recovery", train_argv(swp), read_smollm2, 420,
             swp),
        Step("zeroshot_wanda", "SmolLM2 Wanda 50% on the GPU, zero-shot on local tasks", train_argv(zs),
             read_zeroshot, 300, zs),
        Step("sparse_24", "2:4 semi-structured vs dense on SmolLM2's shapes", sparse, read_sparse, 240),
        Step("nccl_torchrun", "one-process torchrun, DDP over NCCL (gloo on a CPU)",
             train_argv(torchrun, torchrun=True), read_torchrun, 240, torchrun),
    ]


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def run_step(step: Step, out: Path) -> dict:
    """Runs one step's command with its time limit; its output goes to ``<out>/<name>.log``."""
    (out / step.name).mkdir(parents=True, exist_ok=True)
    log = out / f"{step.name}.log"
    start = time.perf_counter()
    with log.open("w") as f:
        try:
            rc = subprocess.run(step.argv, stdout=f, stderr=subprocess.STDOUT, timeout=step.timeout_s,
                                cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            rc = None
    row = {"step": step.name, "what": step.what, "seconds": time.perf_counter() - start}
    if rc != 0:
        return row | {"status": "timeout" if rc is None else f"exit {rc}", "result": _last_line(log)}
    try:
        return row | {"status": "ok", "result": step.read(out / step.name)}
    except Exception as exc:  # the command succeeded but left no readable result
        return row | {"status": "failed", "result": f"result unreadable: {type(exc).__name__}: {exc}"}


def compose_step(step: Step, out: Path) -> dict:
    """--dry-run: the train.py overrides composed by Hydra and validated, nothing run."""
    from swp.config import compose_run_config
    from swp.validation import validate_config

    row = {"step": step.name, "what": step.what, "seconds": 0.0, "result": " ".join(step.argv[1:])[:300]}
    if step.overrides is None:
        return row | {"status": "command"}
    try:
        validate_config(compose_run_config(step.overrides, out / step.name))
    except Exception as exc:  # a bad override (Hydra) or a bad value (ConfigError): one line either way
        return row | {"status": "invalid", "result": str(exc).splitlines()[0]}
    return row | {"status": "composed"}


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| step | what | status | seconds | result |", "|---|---|---|---:|---|"]
    lines += [f"| {r['step']} | {r['what']} | {r['status']} | {r['seconds']:.0f} | {r['result']} |" for r in rows]
    return "\n".join(lines) + "\n"


def _header(device: str) -> str:
    import torch

    card = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else "no GPU"
    return f"gpu_check: device={device} ({card}), torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (the check) | cpu (plumbing only, with --quick)")
    p.add_argument("--quick", action="store_true", help="toy sizes (CPU): every step in minutes")
    p.add_argument("--dry-run", action="store_true", help="compose and validate the commands, run nothing")
    p.add_argument("--only", default="", help="comma-separated step names (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "gpu_check" / time.strftime("%Y%m%d-%H%M%S"))
    args = p.parse_args(argv)
    from swp.testing.zeroshot_tasks import write_tasks

    args.out.mkdir(parents=True, exist_ok=True)
    write_tasks(args.out / "tasks")
    steps = build_steps(args.device, args.quick, args.out.resolve(), (args.out / "tasks").resolve())
    chosen = [s for s in steps if not args.only or s.name in args.only.split(",")]
    rows = [compose_step(s, args.out) if args.dry_run else run_step(s, args.out) for s in chosen]
    text = table(rows, _header(args.device) + (" (dry run: nothing ran)" if args.dry_run else ""))
    (args.out / "gpu_check.md").write_text(text)
    print(text, end="")
    good = {"ok", "composed", "command"}
    return 0 if all(r["status"] in good for r in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
