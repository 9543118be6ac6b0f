"""Distributed runs on CPU (gloo, 2 processes x 1 thread): FSDP2 pruning math equals one
process's exactly, DDP trains like one process, masks hold on every rank.

Each test starts its ranks with `swp.distributed.launch.spawn` (torchrun's environment, one
thread each); the single-process reference is computed inside each rank on an unsharded copy
built from the same seed, so the comparison is exact and needs no files.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from swp.distributed.launch import spawn
from swp.testing.tiny import CONF

WORLD = 2


class _Stack(nn.Sequential):
    """A few Linear layers; it declares no blocks (so every pruner option can be built on it)."""

    def structure(self):
        from swp.models.structure import ModelStructure

        return ModelStructure(blocks=())


def _models(seed: int = 0):
    """The same small model twice: one kept whole, one sharded by FSDP2. Odd row counts (7, 3,
    1) exercise FSDP2's uneven dim-0 split, including a rank that holds no rows at all."""
    from swp.distributed.strategy import FSDP

    def build():
        torch.manual_seed(seed)
        return _Stack(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 3, bias=False),
                      nn.Linear(3, 1, bias=False), nn.Linear(1, 6, bias=False))

    whole, sharded = build(), build()
    strategy = FSDP(units=("0", "2", "3", "4"))  # each Linear its own unit
    strategy.setup(torch.device("cpu"))
    strategy.wrap(sharded)
    return whole, sharded


@torch.no_grad()
def _set_history_point(whole, sharded, t: int) -> None:
    """Moves both models to the same weights (a deterministic function of t)."""
    g = torch.Generator().manual_seed(100 + t)
    for (_, pw), (_, ps) in zip(whole.named_parameters(), sharded.named_parameters()):
        new = pw + 0.05 * torch.randn(pw.shape, generator=g)
        new[new.abs() < 0.02] = 0.0  # some exact zeros, as pruned / tiny weights give
        pw.copy_(new)
        ps.copy_(_distribute(new, ps))


def _distribute(full, like):
    from swp.distributed.sharding import distribute_like

    return distribute_like(full.clone(), like)


SETTINGS = {
    "clone": {},  # the exact online clone, importance vs std(|importance|) per tensor
    "global-current": {"scope": "global", "compare": "current"},
    "window": {"window": 2, "average_of": "signed"},  # the ring buffer
}


def _masks_worker(names: list[str]):
    # One process start per test (imports dominate on 2 shared cores); the models are rebuilt.
    return {name: _masks_case(SETTINGS[name]) for name in names}


def _masks_case(settings: dict):
    from swp.distributed.sharding import full
    from swp.pruners.swp import SWPPruner
    from swp.pruning.masks import MaskSet
    from swp.pruning.threshold import sparsity

    whole, sharded = _models()
    kw = dict(include=[r".*"], **settings)
    pw, ps = SWPPruner(whole, **kw), SWPPruner(sharded, **kw)
    for t in range(1, 7):
        _set_history_point(whole, sharded, t)
        pw.observe()
        ps.observe()
    out = {"state_bytes": (pw.state_bytes(), ps.state_bytes())}
    iw, is_ = pw.importance(), ps.importance()
    out["importance_equal"] = all(torch.equal(iw[n], full(is_[n])) for n in iw)
    out["importance_is_dtensor"] = all(type(v).__name__ == "DTensor" for v in is_.values())
    rate_w, rate_s = pw.rate_for_sparsity(0.55), ps.rate_for_sparsity(0.55)
    out["rate"] = (rate_w, rate_s)
    for rate in (0.6, rate_w):
        kw_, thr_w = pw.masks(rate)
        ks, thr_s = ps.masks(rate)
        out.setdefault("thresholds_equal", []).append(thr_w == thr_s)
        out.setdefault("masks_equal", []).append(all(torch.equal(kw_[n], full(ks[n])) for n in kw_))
        out.setdefault("mask_placements", []).append(
            all(ks[n].placements == ps.params[n].placements for n in ks))
    mw, ms = MaskSet(pw.params, kw_), MaskSet(ps.params, ks)
    mw.apply()
    ms.apply()
    ms.check("test")
    out["mask_sparsity"] = (mw.sparsity(), ms.sparsity())
    out["layer_sparsity"] = ([sparsity([p]) for p in pw.params.values()], [sparsity([p]) for p in ps.params.values()])
    out["weight_sparsity"] = (sparsity(list(pw.params.values())), sparsity(list(ps.params.values())))
    out["weights_equal"] = all(torch.equal(pw.params[n].detach(), full(ps.params[n].detach())) for n in pw.params)
    # A full mask (as read from a checkpoint) is split like its weight.
    reloaded = MaskSet(ps.params, {n: full(k) for n, k in ks.items()})
    out["reloaded_masks_equal"] = all(torch.equal(full(reloaded.keep[n]), kw_[n]) for n in kw_)
    # Drift on one rank is seen by every rank (the guard counts across ranks).
    import torch.distributed as dist

    if dist.get_rank() == 1:
        for n, p in ps.params.items():
            loc = p.to_local()
            pruned = ~ms.keep[n].to_local()
            if bool(pruned.any()):
                with torch.no_grad():
                    loc[pruned] = 1.0
                break
    try:
        ms.check("after drift")
        out["drift_seen"] = False
    except Exception as exc:  # MaskDriftError
        out["drift_seen"] = type(exc).__name__
    return out


def test_fsdp2_masks_thresholds_importance_equal_one_process():
    ranks = spawn(_masks_worker, WORLD, list(SETTINGS))
    for rank, name in ((r, n) for r in range(WORLD) for n in SETTINGS):
        out = ranks[rank][name]
        assert out["importance_equal"] and out["importance_is_dtensor"], (rank, name)
        assert out["rate"][0] == out["rate"][1], (rank, out["rate"])
        assert all(out["thresholds_equal"]) and all(out["masks_equal"]) and all(out["mask_placements"]), rank
        assert out["mask_sparsity"][0] == out["mask_sparsity"][1] and out["mask_sparsity"][0] > 0
        assert out["layer_sparsity"][0] == out["layer_sparsity"][1]
        assert out["weight_sparsity"][0] == out["weight_sparsity"][1]
        assert out["weights_equal"] and out["reloaded_masks_equal"]
        assert out["drift_seen"] == "MaskDriftError", (rank, name)  # every rank raises, not only rank 1
        whole, shard = out["state_bytes"]
        assert shard < whole  # this rank's rows only


UNIT_MODELS = ["llama", "gpt2", "gpt"]


def _units_worker(families: list[str]) -> dict:
    return {family: _units_case(family) for family in families}


def _units_case(family: str) -> dict:
    """`distributed=fsdp`'s default units on one model: which modules became FSDP units, and the
    sharded model's loss against the whole one's."""
    from torch.distributed.fsdp import FSDPModule

    from swp.distributed.sharding import full
    from swp.distributed.strategy import FSDP
    from swp.models.gpt import GPT
    from swp.models.hf_causal_lm import hf_causal_lm
    from swp.testing.hf_tiny import GPT2, LLAMA

    def build():
        torch.manual_seed(0)
        if family == "gpt":
            return GPT(vocab_size=50, block_size=16, n_layer=3, n_head=2, n_embd=32)
        return hf_causal_lm(config=dict(LLAMA if family == "llama" else GPT2, **{
            "num_hidden_layers" if family == "llama" else "n_layer": 3}), vocab_size=50, device="cpu")

    def loss(model):
        model.eval()  # GPT-2's dropout would draw differently in each
        x = torch.randint(50, (2, 16), generator=torch.Generator().manual_seed(1))
        return float(model(x, x)[1] if family == "gpt" else model(input_ids=x, labels=x, use_cache=False).loss)

    whole, sharded = build(), build()
    strategy = FSDP()  # units: auto
    strategy.setup(torch.device("cpu"))
    strategy.wrap(sharded)
    units = [name for name, m in sharded.named_modules() if name and isinstance(m, FSDPModule)]
    return {"units": units, "root_sharded": isinstance(sharded, FSDPModule),
            "loss": (loss(whole), loss(sharded)),
            "same_weights": all(torch.equal(a.detach(), full(b.detach()))
                                for a, b in zip(whole.parameters(), sharded.parameters()))}


def test_fsdp2_shards_one_unit_per_decoder_layer():
    """`units: auto` takes the blocks the model declares: a Hugging Face Llama's and GPT-2's decoder
    layers (no class of ours in them), our GPT's blocks; the root takes the rest."""
    ranks = spawn(_units_worker, WORLD, UNIT_MODELS)
    expect = {"llama": [f"model.layers.{i}" for i in range(3)], "gpt2": [f"transformer.h.{i}" for i in range(3)],
              "gpt": [f"blocks.{i}" for i in range(3)]}
    for rank in range(WORLD):
        for family in UNIT_MODELS:
            out = ranks[rank][family]
            assert out["units"] == expect[family], (rank, family, out["units"])
            assert out["root_sharded"] and out["same_weights"], (rank, family, out)
            assert out["loss"][1] == pytest.approx(out["loss"][0], rel=1e-6), (rank, family, out)


PRUNER_OPTIONS = sorted(p.stem for p in (CONF / "pruner").glob("*.yaml"))


def _every_pruner_worker(names: list[str]) -> dict:
    return {name: _pruner_option_case(name) for name in names}


def _pruner_option_case(name: str) -> dict:
    """One `pruner=<name>` option, built as the run builds it, on the whole and the sharded
    model: either refused in one line under FSDP2, or the same masks as one process."""
    import tempfile
    from pathlib import Path

    from swp.distributed.sharding import full
    from swp.errors import ConfigError
    from swp.launch import build
    from swp.testing.tiny import compose_cfg

    cfg = compose_cfg(["target_sparsity=0.5", f"pruner={name}"] + (["pruner.include=[.*]"] if name != "none" else []),
                      Path(tempfile.mkdtemp()))
    whole, sharded = _models()
    pw, ps = build("pruner", cfg.pruner)(model=whole), build("pruner", cfg.pruner)(model=sharded)
    try:
        from swp.distributed.strategy import FSDP

        FSDP().check_pruner(type(ps).__name__, ps.capabilities)
    except ConfigError as exc:
        return {"refused": str(exc)}
    if not pw.capabilities.prunes:
        return {"prunes": False}
    for t in range(1, 4):  # a short history for the tracking pruners (the others ignore it)
        _set_history_point(whole, sharded, t)
        for pruner in (pw, ps):
            if pruner.capabilities.tracks:
                pruner.observe()
    out = {}
    for label, rate_w, rate_s in (("rate", 0.6, 0.6), ("target", pw.rate_for_sparsity(0.5), ps.rate_for_sparsity(0.5))):
        kw_, _ = pw.masks(rate_w)
        ks, _ = ps.masks(rate_s)
        out[label] = (rate_w == rate_s and all(torch.equal(kw_[n], full(ks[n])) for n in kw_),
                      sum(int((~k).sum()) for k in kw_.values()))
    return out


@pytest.mark.slow
def test_every_pruner_option_under_fsdp2_is_refused_in_one_line_or_equals_one_process():
    """Generated over conf/pruner: a pruner either gives one process's masks from the shards (at
    a prune_rate and at a target_sparsity), or is refused before training in one line."""
    ranks = spawn(_every_pruner_worker, WORLD, PRUNER_OPTIONS)
    for name in PRUNER_OPTIONS:
        for rank in range(WORLD):
            out = ranks[rank][name]
            print(name, rank, out)
            if "refused" in out:
                assert out["refused"].startswith("pruner ") and "\n" not in out["refused"], out
            elif out.get("prunes") is False:
                assert name == "none"
            else:
                for label in ("rate", "target"):
                    same, pruned = out[label]
                    assert same and pruned > 0, (name, rank, label, out)
    assert "refused" not in ranks[0]["random"] and "refused" not in ranks[0]["magnitude"]


# ---------------------------------------------------------------- training under DDP / FSDP2

TEXT_SEED = 7


def _task(batch_size: int = 8):
    from swp.tasks.char_lm import CharLMTask

    g = torch.Generator().manual_seed(TEXT_SEED)
    alphabet = "abcdefgh \n"
    ids = torch.randint(len(alphabet), (20000,), generator=g)
    text = "".join(alphabet[i] for i in ids.tolist())
    return CharLMTask(text, block_size=16, batch_size=batch_size, eval_batches=4)


def _train_worker(kinds: list[str], steps: int, finetune_steps: int, folder=None):
    return {kind: _train_case(kind, steps, finetune_steps, folder) for kind in kinds}


def _train_case(kind: str, steps: int, finetune_steps: int, folder=None):
    """Dense steps, SWP tracking, prune to 50%, fine-tune with masks: the run's phases in small."""
    import contextlib

    from swp.distributed import strategy as strategies
    from swp.distributed.sharding import full
    from swp.logging.base import Logger
    from swp.models.gpt import GPT
    from swp.pruners.swp import SWPPruner
    from swp.pruning.masks import MaskSet
    from swp.training.loop import PhaseSpec, Placement, make_optimizer, train_phase

    strategy = {"none": strategies.NoDistributed, "ddp": strategies.DDP, "fsdp": strategies.FSDP}[kind]()
    device = strategy.setup(torch.device("cpu"))
    task = strategy.split(_task())
    torch.manual_seed(0)
    model = GPT(vocab_size=task.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    trained = strategy.wrap(model)
    pruner = SWPPruner(model)  # after wrap: under FSDP2 the parameters are now DTensors
    where = Placement(device, contextlib.nullcontext, Logger())
    opt = make_optimizer(model, 3e-3, 0.1, (0.9, 0.95))
    dense = train_phase(trained, task, opt, torch.Generator().manual_seed(1),
                        PhaseSpec("train", steps, lambda s: 3e-3, log_every=1), where,
                        after_step=lambda s: pruner.observe())
    dense_val = task.evaluate(trained, device, contextlib.nullcontext)["loss"]
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    masks = MaskSet(pruner.params, keep)
    masks.apply()
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    # The bare model: under DDP the task routes the training forward through the wrapper.
    train_phase(model, task, opt, torch.Generator().manual_seed(2),
                PhaseSpec("finetune", finetune_steps, lambda s: 1e-3, grad_clip=1.0, log_every=1), where, masks=masks)
    masks.check("after fine-tuning")  # raises on any rank's drift
    from swp.distributed.sharding import local

    zeros_here = all(bool((local(p.detach())[~local(masks.keep[n])] == 0).all()) for n, p in pruner.params.items())
    final_val = task.evaluate(trained, device, contextlib.nullcontext)["loss"]
    resumed = {}
    if folder:
        from swp.distributed.state import GatheredCheckpointStore, ShardedCheckpointStore

        resumed = _checkpoint_round_trip(strategy, model, pruner, masks, opt, task, device, folder, kind,
                                         GatheredCheckpointStore)
        if kind == "fsdp":  # the same round trip through torch.distributed.checkpoint shards
            sharded = _checkpoint_round_trip(strategy, model, pruner, masks, opt, task, device, folder, kind,
                                             ShardedCheckpointStore, subdir="fsdp-sharded")
            resumed |= {f"sharded_{k}": v for k, v in sharded.items()}
    return resumed | {"dense_train_loss": dense["last_loss"], "dense_val": dense_val, "final_val": final_val,
            "sparsity": masks.sparsity(), "zeros_on_this_rank": zeros_here,
            "masks": {n: full(k).clone() for n, k in masks.keep.items()},
            "tracked_bytes": pruner.state_bytes(), "results": strategy.results()}


def _checkpoint_round_trip(strategy, model, pruner, masks, opt, task, device, folder, kind, store_cls, subdir=None):
    """Checkpoint -> a fresh model of the same world size -> one more step on each: identical
    weights, tracked state and masks before and after the step (bit-exact resume)."""
    from pathlib import Path

    from swp.distributed.sharding import full
    from swp.distributed.state import shard_optimizer_state
    from swp.models.gpt import GPT
    from swp.pruners.swp import SWPPruner
    from swp.pruning.masks import MaskSet
    from swp.training.loop import make_optimizer

    store = store_cls(Path(folder) / (subdir or kind), 0, 1, {})
    store.save(model, {"stage": "finetune", "step": 1, "optimizer": opt.state_dict(), "pruner": pruner.state_dict(),
                       "masks": dict(masks.keep)}, 1)
    ckpt = store.latest()
    torch.manual_seed(123)  # another init: everything must come from the checkpoint
    model2 = GPT(vocab_size=task.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32)
    if kind == "fsdp":
        strategy.wrap(model2)  # sharded like the first (DDP: a bare replica, see below)
    ckpt.load_weights(model2)
    pruner2 = SWPPruner(model2)
    pruner2.load_state_dict(ckpt.state["pruner"])
    masks2 = MaskSet(pruner2.params, ckpt.state["masks"])
    opt2 = make_optimizer(model2, 1e-3, 0.1, (0.9, 0.95))
    opt2.load_state_dict(shard_optimizer_state(opt2, ckpt.state["optimizer"]))
    same = all(torch.equal(full(a.detach()), full(b.detach())) for a, b in zip(model.parameters(), model2.parameters()))
    g = torch.Generator().manual_seed(9)
    batch = task.train_batch(g, device)
    for m, o, mk in ((model, opt, masks), (model2, opt2, masks2)):
        o.zero_grad(set_to_none=True)
        (task.loss(m, batch) if kind != "ddp" or m is model else task.task.loss(m, batch)).backward()
        if kind == "ddp" and m is model2:  # a bare replica: average its gradients by hand
            import torch.distributed as dist

            for p in m.parameters():
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()
        mk.mask_grads()
        o.step()
        mk.enforce()
    pairs = list(zip(model.parameters(), model2.parameters()))
    after = all(torch.equal(full(a.detach()), full(b.detach())) for a, b in pairs)
    clones = all(torch.equal(full(pruner.clones[n]), full(pruner2.clones[n])) for n in pruner.clones)
    same_masks = all(torch.equal(full(masks.keep[n]), full(masks2.keep[n])) for n in masks.keep)
    return {"resume_same": same, "resume_same_after_step": after, "resume_clones": clones and same_masks,
            "checkpoint": str(ckpt.path), "files": sorted(str(p.relative_to(ckpt.path)) for p in ckpt.path.rglob("*"))}


LOSS_TOL = 1e-5  # absolute, nats; measured 1e-7: float32 gradients averaged in another order, 40 steps


def test_two_ranks_train_like_one_process_and_masks_hold(tmp_path):
    one = _train_case("none", 30, 10)  # in this process: the single-process reference
    both = spawn(_train_worker, WORLD, ["ddp", "fsdp"], 30, 10, str(tmp_path))
    for kind in ("ddp", "fsdp"):
        _check_against_one(kind, [b[kind] for b in both], one)
        for out in (b[kind] for b in both):
            assert out["resume_same"] and out["resume_same_after_step"] and out["resume_clones"], kind
            if kind == "fsdp":  # sharded: one shard file per rank, no gathered weights, same exact resume
                assert out["sharded_resume_same"] and out["sharded_resume_same_after_step"], out["sharded_files"]
                assert out["sharded_resume_clones"]
                assert [f for f in out["sharded_files"] if f.endswith(".distcp")] == ["shards/__0_0.distcp",
                                                                                       "shards/__1_0.distcp"]
                assert "model.safetensors" not in out["sharded_files"] and "manifest.json" in out["sharded_files"]
        # A gathered checkpoint is the single-process format: one process reads it.
        from swp.infra.checkpoint import read_checkpoint
        from swp.models.gpt import GPT

        ckpt = read_checkpoint(both[0][kind]["checkpoint"])
        assert ckpt.state["world_size"] == WORLD
        model = GPT(vocab_size=10, block_size=16, n_layer=2, n_head=2, n_embd=32)
        ckpt.load_weights(model)
        assert all(torch.equal(ckpt.state["masks"][n], both[0][kind]["masks"][n]) for n in ckpt.state["masks"])


def _check_against_one(kind: str, ranks: list[dict], one: dict) -> None:
    print(f"{kind}: val loss after dense {ranks[0]['dense_val']:.7f} vs one process {one['dense_val']:.7f}; "
          f"final {ranks[0]['final_val']:.7f} vs {one['final_val']:.7f}")
    for rank, out in enumerate(ranks):
        assert out["zeros_on_this_rank"], rank
        assert out["results"] == {"distributed": kind, "world_size": 2, "batch_per_rank": 4, "global_batch": 8}
        assert math.isclose(out["dense_val"], one["dense_val"], abs_tol=LOSS_TOL), (out["dense_val"], one["dense_val"])
        assert math.isclose(out["final_val"], one["final_val"], abs_tol=LOSS_TOL), (out["final_val"], one["final_val"])
        assert out["sparsity"] == ranks[0]["sparsity"]
        assert all(torch.equal(out["masks"][n], ranks[0]["masks"][n]) for n in out["masks"])  # one mask set
    if kind == "fsdp":
        assert ranks[0]["tracked_bytes"] + ranks[1]["tracked_bytes"] == one["tracked_bytes"]
    else:
        assert ranks[0]["tracked_bytes"] == one["tracked_bytes"]


# ---------------------------------------------------------------- the real entrypoint under torchrun

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from swp.testing.tiny import ROOT, TINY  # noqa: E402

# TINY, with checkpoints inside phases and a longer dense phase (room for a SIGTERM mid-training).
RUN = TINY + ["energy=none", "trajectories.per_tensor=0", "schedule.train_steps=120", "schedule.log_every=5",
              "checkpoint.every=20", "checkpoint.keep_after_success=true"]


def _torchrun(*args: str, out: Path, background: bool = False):
    from swp.distributed.launch import free_port

    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"),
               WANDB_MODE="offline", WANDB_SILENT="true")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}", f"--master_port={free_port()}",
           str(ROOT / "train.py"), *RUN, *args, f"output_dir={out}"]
    if background:  # its own process group: the test signals torchrun and its ranks together
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _val(results: dict) -> tuple:
    return tuple(results[k] for k in ("dense_val_loss", "pruned_val_loss", "val_loss", "sparsity", "prune_rate_used"))


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """One process (in this process) and DDP at 2 ranks, uninterrupted, on the same config."""
    from swp.cli import run
    from swp.config import compose_run_config

    tmp = tmp_path_factory.mktemp("reference")
    one = run(compose_run_config(RUN, tmp / "one"))
    p = _torchrun("distributed=ddp", out=tmp / "ddp")
    assert p.returncode == 0, p.stderr[-3000:]
    return {"one": one, "one_dir": tmp / "one", "ddp": _results(tmp / "ddp"), "ddp_dir": tmp / "ddp",
            "ddp_stdout": p.stdout}


@pytest.mark.slow
def test_torchrun_ddp_completes_like_one_process_and_only_rank0_writes(reference_runs):
    one, ddp = reference_runs["one"], reference_runs["ddp"]
    print(f"torchrun ddp: val_loss {ddp['val_loss']:.7f} vs one process {one['val_loss']:.7f}")
    assert (ddp["distributed"], ddp["world_size"], ddp["batch_per_rank"], ddp["global_batch"]) == ("ddp", 2, 4, 8)
    assert math.isclose(ddp["val_loss"], one["val_loss"], abs_tol=1e-5), (ddp["val_loss"], one["val_loss"])
    assert ddp["sparsity"] > 0 and ddp["mask_sparsity"] == ddp["sparsity"]
    assert reference_runs["ddp_stdout"].count("sparsity=") == 1  # one summary line: rank 0's
    # metrics.jsonl written once (rank 0's lines only), exactly as one process writes it
    assert len(_lines(reference_runs["ddp_dir"])) == len(_lines(reference_runs["one_dir"]))


@pytest.mark.slow
def test_torchrun_fsdp_completes_with_one_wandb_run_and_half_the_state(reference_runs, tmp_path):
    one = reference_runs["one"]
    p = _torchrun("distributed=fsdp", "logger=wandb", out=tmp_path / "fsdp")
    assert p.returncode == 0, p.stderr[-3000:]
    fsdp = _results(tmp_path / "fsdp")
    print(f"torchrun fsdp: val_loss {fsdp['val_loss']:.7f} vs one process {one['val_loss']:.7f}")
    assert (fsdp["distributed"], fsdp["world_size"]) == ("fsdp", 2)
    assert math.isclose(fsdp["val_loss"], one["val_loss"], abs_tol=1e-5), (fsdp["val_loss"], one["val_loss"])
    assert fsdp["tracked_state_bytes"] == one["tracked_state_bytes"] // 2  # this rank's half of the clone
    assert len(list((tmp_path / "fsdp" / "wandb").glob("offline-run-*"))) == 1  # W&B writes in the run folder
    for f in ("model.safetensors", "masks.safetensors", "importance.safetensors"):
        assert (tmp_path / "fsdp" / f).is_file(), f


@pytest.mark.slow
def test_torchrun_sigterm_the_group_then_resume_equals_uninterrupted(reference_runs, tmp_path):
    proc = _torchrun("distributed=ddp", out=tmp_path / "stopped", background=True)
    _wait_for_step(proc, tmp_path / "stopped", 45)
    # The ranks get the signal, as SLURM signals every task of a step; torchrun's own agent is left
    # out, because on SIGTERM it re-sends the signal and then kills its workers on its own clock.
    for pid in _worker_pids(proc.pid):
        os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    checkpoints = sorted(p.name for p in (tmp_path / "stopped" / "checkpoints").iterdir())
    assert proc.returncode != 0, "the run was not stopped"
    assert err.count("stopped: interrupted by SIGTERM") == WORLD, (checkpoints, err[-4000:])
    # every rank stopped after the same step, with one checkpoint between two interval ones
    stopped_at = {line.split(" at train step ")[1].split(";")[0] for line in err.splitlines()
                  if "stopped: interrupted by SIGTERM at train step" in line}
    assert len(stopped_at) == 1, err[-3000:]
    assert not (tmp_path / "stopped" / "results.json").exists()
    p = _torchrun("distributed=ddp", out=tmp_path / "stopped")
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = _results(tmp_path / "stopped")
    assert resumed["resumed_from"] is not None
    assert _val(resumed) == _val(reference_runs["ddp"])  # bit-identical to the uninterrupted run


def _wait_for_step(proc, folder: Path, step: int, timeout_s: float = 300) -> None:
    """Returns once the running job's metrics.jsonl has reached `step` (or the job ended)."""
    metrics, deadline = folder / "metrics.jsonl", time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any(json.loads(line).get("step", 0) >= step for line in metrics.read_text().splitlines()
                                    if line.strip()):
            return
        time.sleep(0.05)


def _worker_pids(agent: int) -> list[int]:
    """The train.py processes torchrun started (children of its agent)."""
    out = subprocess.run(["pgrep", "-P", str(agent)], capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out]
    return [p for p in pids if "train.py" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]


def _lines(folder: Path) -> list[str]:
    return [line for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt"])
def test_torchrun_ddp_calibrating_pruners_equal_one_process(tmp_path, pruner):
    """Each rank calibrates on its slice of the calibration batches; the summed statistics give
    the single process's masks, and the job records the job's calibration tokens."""
    from swp.cli import run
    from swp.config import compose_run_config

    short = ["schedule.train_steps=20", "schedule.finetune_steps=6", f"pruner={pruner}"]
    one = run(compose_run_config([*RUN, *short], tmp_path / "one"))
    p = _torchrun("distributed=ddp", *short, out=tmp_path / "ddp")
    assert p.returncode == 0, p.stderr[-3000:]
    ddp = _results(tmp_path / "ddp")
    print(f"torchrun ddp {pruner}: pruned {ddp['pruned_val_loss']:.7f} vs one process {one['pruned_val_loss']:.7f}")
    assert ddp["calibration_tokens"] == one["calibration_tokens"] > 0
    assert ddp["sparsity"] == one["sparsity"] and ddp["mask_sparsity"] == ddp["sparsity"]
    for key in ("pruned_val_loss", "val_loss"):
        assert math.isclose(ddp[key], one[key], abs_tol=1e-5), (key, ddp[key], one[key])


@pytest.mark.slow
def test_torchrun_fsdp_sharded_checkpoints_resume_exactly(tmp_path):
    """checkpoint.sharded=true: every checkpoint holds one torch.distributed.checkpoint file per
    rank and no gathered weights; resuming from one inside the dense phase (weights, AdamW
    moments and SWP's state all read back as shards) gives the uninterrupted run's numbers."""
    import shutil

    args = ("distributed=fsdp", "checkpoint.sharded=true", "checkpoint.keep=100")
    run_dir = tmp_path / "run"
    p = _torchrun(*args, out=run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    uninterrupted = _results(run_dir)
    checkpoints = sorted((run_dir / "checkpoints").iterdir())
    for c in checkpoints:
        assert sorted(f.name for f in (c / "shards").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"], c
        assert not (c / "model.safetensors").exists()
    mid = [c for c in checkpoints if c.name.endswith("-train")][1]  # inside the dense phase
    for c in checkpoints:
        if c.name > mid.name:
            shutil.rmtree(c)
    (run_dir / "results.json").unlink()
    p = _torchrun(*args, out=run_dir)
    assert p.returncode == 0, p.stderr[-3000:]
    resumed = _results(run_dir)
    assert resumed["resumed_from"] == mid.name
    assert _val(resumed) == _val(uninterrupted)


def test_sharded_checkpoints_are_refused_where_they_cannot_be_read(tmp_path):
    from swp.cli import run
    from swp.config import compose_run_config
    from swp.distributed.state import as_rank_checkpoint
    from swp.errors import ConfigError
    from swp.infra.checkpoint import Checkpoint

    with pytest.raises(ConfigError, match=r"^checkpoint.sharded=true needs distributed=fsdp \(under distributed=none"):
        run(compose_run_config([*RUN, "checkpoint.sharded=true"], tmp_path / "one"))
    assert not (tmp_path / "one" / "results.json").exists()
    written = Checkpoint(tmp_path, "train", 40, {"layout": "sharded", "world_size": 2}, {})
    with pytest.raises(ConfigError, match=r"is sharded over 2 ranks; resume it with torchrun --nproc_per_node=2 "
                                          r"\(this job has 1\)"):
        as_rank_checkpoint(written)


@pytest.mark.slow
def test_torchrun_a_killed_rank_ends_the_job_without_a_hang_naming_it(tmp_path):
    """SIGKILL one rank mid-training (no handler can run): the other is not left waiting in a
    collective; the job ends within seconds, non-zero, and the failure names rank 1."""
    proc = _torchrun("distributed=ddp", out=tmp_path / "killed", background=True)
    _wait_for_step(proc, tmp_path / "killed", 30)
    rank1 = [p for p in _worker_pids(proc.pid) if b"RANK=1\x00" in Path(f"/proc/{p}/environ").read_bytes()]
    assert len(rank1) == 1, rank1
    killed_at = time.time()
    os.kill(rank1[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)  # a hang would time out here
    print(f"job ended {time.time() - killed_at:.1f} s after the kill; exit {proc.returncode}")
    print("\n".join(line for line in err.splitlines() if "rank" in line.lower())[-1500:])
    assert proc.returncode != 0
    assert time.time() - killed_at < 60
    assert "(exitcode: -9) local_rank: 1" in err, err[-3000:]  # torchrun names the killed rank
    # Rank 0 usually says why it stopped in one line before torchrun ends it (not asserted: a race).
    assert not (tmp_path / "killed" / "results.json").exists()


def test_slurm_tasks_get_torch_rank_variables_from_slurm_ones(monkeypatch):
    """What submitit's tasks (hydra/launcher=slurm, tasks_per_node=4 on 2 nodes) see: SLURM's
    variables only; every task derives the same rendezvous, and torchrun's own are left alone."""
    from swp.distributed import env

    assert env.first_slurm_host("gpu[03-05,7],cpu1") == "gpu03"
    assert env.first_slurm_host("a1,b2") == "a1" and env.first_slurm_host("node7") == "node7"
    slurm = {"SLURM_JOB_ID": "123456", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "gpu[03-04]"}
    seen = []
    for procid, localid in (("0", "0"), ("5", "1")):
        environ = slurm | {"SLURM_PROCID": procid, "SLURM_LOCALID": localid}
        assert env.export_slurm_env(environ)
        seen.append((environ["RANK"], environ["WORLD_SIZE"], environ["LOCAL_RANK"], environ["MASTER_ADDR"],
                     environ["MASTER_PORT"]))
    assert seen == [("0", "8", "0", "gpu03", str(20000 + 123456 % 40000)),
                    ("5", "8", "1", "gpu03", str(20000 + 123456 % 40000))]
    torchrun = slurm | {"SLURM_PROCID": "0", "RANK": "3", "WORLD_SIZE": "4"}
    assert not env.export_slurm_env(torchrun) and torchrun["RANK"] == "3"
    assert not env.export_slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})  # one task: one process
    mine = slurm | {"SLURM_PROCID": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert env.export_slurm_env(mine) and (mine["MASTER_ADDR"], mine["MASTER_PORT"]) == ("10.0.0.1", "29500")
    from swp.errors import ConfigError

    with pytest.raises(ConfigError, match="^SLURM task without usable"):
        env.export_slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    torch_keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    before = {key: os.environ.get(key) for key in torch_keys}
    for key in torch_keys:
        monkeypatch.setenv(key, "")  # recorded, so what the export writes is undone after the test
        monkeypatch.delenv(key)
    for key, value in (slurm | {"SLURM_PROCID": "1", "SLURM_LOCALID": "1"}).items():
        monkeypatch.setenv(key, value)
    assert env.launched_info() == env.RankInfo(1, 8, 1)  # what the strategies' setup reads
    monkeypatch.undo()
    assert {key: os.environ.get(key) for key in torch_keys} == before  # nothing leaks into later tests


def _gradual_worker(regrows: list[bool]) -> dict:
    return {regrow: _gradual_case(regrow) for regrow in regrows}


def _gradual_case(regrow: bool) -> dict:
    """Gradual SWP (Eq. 2's order over all tensors) on the whole and the sharded model: five
    mask updates, the weights moved between them (pruned entries too, as a step moves them)."""
    from swp.distributed.sharding import full
    from swp.pruners.swp_gradual import GradualSWPPruner

    whole, sharded = _models()
    kw = dict(final_sparsity=0.6, end_step=5, start_step=1, update_every=1, include=[r".*"],
              allocation="shared_rate", regrow=regrow)
    pw, ps = GradualSWPPruner(whole, **kw), GradualSWPPruner(sharded, **kw)
    ow, os_ = torch.optim.SGD(whole.parameters(), lr=0.0), torch.optim.SGD(sharded.parameters(), lr=0.0)
    same, metrics = [], []
    for t in range(1, 7):
        _set_history_point(whole, sharded, t)
        mw, ms = pw.on_train_step(t - 1, ow), ps.on_train_step(t - 1, os_)
        pw.observe()
        ps.observe()
        metrics.append(mw == ms)
        same.append(all(torch.equal(pw.current.keep[n], full(ps.current.keep[n])) for n in pw.params)
                    and all(torch.equal(pw.params[n].detach(), full(ps.params[n].detach())) for n in pw.params)
                    and all(torch.equal(pw.shadow[n], full(ps.shadow[n])) for n in pw.shadow)
                    and pw.shadow.keys() == ps.shadow.keys())
    twin = GradualSWPPruner(sharded, **kw)  # a gathered checkpoint's full tensors, split again
    twin.load_state_dict({k: ({n: full(v) for n, v in v.items()} if isinstance(v, dict) else v)
                          for k, v in ps.state_dict().items()})
    reloaded = all(torch.equal(full(twin.current.keep[n]), pw.current.keep[n]) for n in pw.params)
    return {"same": same, "metrics": metrics, "reloaded": reloaded, "sparsity": pw.current.sparsity()}


def test_gradual_swp_under_fsdp2_equals_one_process():
    """Masks, weights, the straight-through shadow and the logged flip rates of every update are
    one process's; the state reloads from full tensors (a gathered checkpoint)."""
    ranks = spawn(_gradual_worker, WORLD, [False, True])
    for rank in range(WORLD):
        for regrow in (False, True):
            out = ranks[rank][regrow]
            assert all(out["same"]) and all(out["metrics"]) and out["reloaded"], (rank, regrow, out)
            assert out["sparsity"] == pytest.approx(0.6, abs=0.05)
