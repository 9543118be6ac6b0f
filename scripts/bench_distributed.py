"""Memory per rank and throughput of one process vs DDP and FSDP2 at 2 ranks (CPU, gloo).

    PYTHONPATH=src python scripts/bench_distributed.py [--steps 20] [--n-layer 4 --n-embd 128]

Measured per rank: bytes of the weights, the AdamW state and SWP's tracked state (the clone);
tokens/s of the global batch (forward + backward + AdamW + SWP tracking every step) at world
size 1 and 2, side by side. Each rank runs one torch thread, so world size 2 uses 2 cores
against 1 for world size 1; on a machine shared with other jobs the tokens/s are noisy.
Under FSDP2 also: the bytes each rank writes for one checkpoint (model, AdamW state, SWP
state) and its wall seconds, gathered (rank 0 writes everything) against sharded
(`checkpoint.sharded=true`: torch.distributed.checkpoint, one shard file per rank), side by side.
Ends with the arithmetic for a 7B model at 8 ranks.
"""

from __future__ import annotations

import argparse
import time

import torch


def _measure(kind: str, n_layer: int, n_embd: int, block: int, batch: int, steps: int, warmup: int) -> dict:
    from swp.distributed import strategy as strategies
    from swp.distributed.sharding import local_bytes
    from swp.models.gpt import GPT
    from swp.pruners.swp import SWPPruner
    from swp.tasks.char_lm import CharLMTask
    from swp.training.loop import make_optimizer

    strategy = {"none": strategies.NoDistributed, "ddp": strategies.DDP, "fsdp": strategies.FSDP}[kind]()
    device = strategy.setup(torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    text = "".join(chr(97 + int(i)) for i in torch.randint(26, (50_000,), generator=g))
    task = strategy.split(CharLMTask(text, block_size=block, batch_size=batch, eval_batches=1))
    torch.manual_seed(0)
    model = GPT(vocab_size=task.vocab_size, block_size=block, n_layer=n_layer, n_head=max(1, n_embd // 32),
                n_embd=n_embd)
    strategy.wrap(model)
    pruner = SWPPruner(model)
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    gen = torch.Generator().manual_seed(1)
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        loss = task.loss(model, task.train_batch(gen, device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        pruner.observe()
    seconds = time.perf_counter() - t0
    state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    out = {"kind": kind, "world": strategy.world_size, "params": sum(p.numel() for p in model.parameters()),
           "weight_bytes": local_bytes(list(model.parameters())), "optimizer_bytes": local_bytes(state),
           "tracked_bytes": pruner.state_bytes(), "tokens_per_s": steps * batch * block / seconds}
    if kind == "fsdp":
        out["checkpoints"] = _checkpoint_bytes(model, opt, pruner)
    return out


def _writer(name: str) -> int:
    """The rank that wrote a checkpoint file: its own shard ``__<rank>_0.distcp``; rank 0 the rest."""
    return int(name[2:].split("_", 1)[0]) if name.startswith("__") and name.endswith(".distcp") else 0


def _checkpoint_bytes(model, opt, pruner) -> dict:
    """Bytes this rank writes and wall seconds for one checkpoint in each layout."""
    import tempfile
    from pathlib import Path

    from swp.distributed import env
    from swp.distributed.state import GatheredCheckpointStore, ShardedCheckpointStore

    state = {"stage": "train", "step": 1, "optimizer": opt.state_dict(), "pruner": pruner.state_dict()}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(env.broadcast_object(tmp))  # rank 0's folder: the ranks share one
        for name, kind in (("gathered", GatheredCheckpointStore), ("sharded", ShardedCheckpointStore)):
            t0 = time.perf_counter()
            path = kind(folder / name, 0, 1, {}).save(model, state, 1)
            seconds = time.perf_counter() - t0
            mine = [f for f in path.rglob("*") if f.is_file() and _writer(f.name) == env.rank()]
            out[name] = {"bytes": sum(f.stat().st_size for f in mine), "seconds": seconds}
            env.barrier()
    return out


def main() -> None:
    from swp.distributed.launch import spawn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="global batch (split over the ranks)")
    a = ap.parse_args()
    args = (a.n_layer, a.n_embd, a.block, a.batch, a.steps, a.warmup)
    rows = spawn(_measure, 1, "none", *args)[:1]
    rows.append(spawn(_measure, 2, "ddp", *args)[0])  # rank 0's figures (ranks are alike)
    fsdp = spawn(_measure, 2, "fsdp", *args)
    rows.append(fsdp[0])
    print(f"GPT {a.n_layer} layers x {a.n_embd}, ctx {a.block}, global batch {a.batch}, {rows[0]['params']:,} "
          f"parameters, 1 thread per rank")
    print(f"{'mode':6} {'world':>5} {'weights B/rank':>15} {'AdamW B/rank':>13} {'SWP state B/rank':>17} "
          f"{'tokens/s':>9}")
    for r in rows:
        print(f"{r['kind']:6} {r['world']:>5} {r['weight_bytes']:>15,} {r['optimizer_bytes']:>13,} "
              f"{r['tracked_bytes']:>17,} {r['tokens_per_s']:>9,.0f}")
    print("\nFSDP2 checkpoint, bytes written / wall seconds per rank (rank 0 also writes state.pt, config, manifest):")
    for layout in ("gathered", "sharded"):
        written = [f["checkpoints"][layout] for f in fsdp]
        cells = ", ".join(f"rank {r}: {w['bytes']:,} B in {w['seconds']:.2f} s" for r, w in enumerate(written))
        print(f"  {layout:8} {cells}")
    n, ranks = 7e9, 8
    per = {"weights (fp32)": 4 * n, "grads (fp32)": 4 * n, "AdamW (2 x fp32)": 8 * n, "SWP clone (fp32)": 4 * n}
    total = sum(per.values())
    print(f"\n7B at {ranks} ranks (bytes per parameter: weights 4, grads 4, AdamW 8, SWP clone 4 = 20):")
    print(f"  one GPU / DDP: {total / 1e9:,.0f} GB per rank; FSDP2: {total / ranks / 1e9:,.1f} GB per rank "
          f"(SWP clone {per['SWP clone (fp32)'] / ranks / 1e9:.1f} GB of it), before activations and the "
          f"transient all-gathered unit")


if __name__ == "__main__":
    main()
