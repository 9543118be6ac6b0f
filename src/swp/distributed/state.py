"""Checkpoints and run outputs of a multi-rank run: gathered full state, written by rank 0.

The default (and, for now, the only) format is a *gathered* checkpoint: every DTensor in the
run's state (FSDP2 weights, AdamW moments, SWP's tracked state, masks) is all-gathered to a
full tensor, rank 0 writes it with the run's usual atomic, checksummed writer, and every rank
reads the same folder on resume and keeps its own shard. It is world-size independent (a DDP
or FSDP2 checkpoint resumes at any world size, and in one process), and fits models whose full
state fits in one host's memory; `torch.distributed.checkpoint` sharded checkpoints for larger
models are not implemented yet (docs/distributed.md).

Every function here is collective under FSDP2: all ranks call it, in the same order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from swp.distributed import env
from swp.distributed.sharding import distribute_like, full, is_sharded
from swp.infra.checkpoint import Checkpoint, CheckpointStore
from swp.infra.signals import StopRequest


def full_state(obj):
    """`obj` (nested dicts, lists, tuples of tensors and plain data) with every DTensor replaced
    by its full tensor (collective: all ranks call it on the same structure)."""
    if is_sharded(obj):
        return full(obj.detach()).clone()  # own storage (the gather may leave a padded view)
    if isinstance(obj, dict):
        return {k: full_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(full_state(v) for v in obj)
    return obj


def shard_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """A saved (full) optimizer state dict split like the optimizer's parameters, ready for
    `optimizer.load_state_dict` (unchanged for plain parameters). Optimizer.state_dict numbers
    the parameters in param_groups order, so the i-th saved state belongs to that parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(is_sharded(p) for p in params):
        return state
    out = dict(state)
    out["state"] = {
        i: {k: distribute_like(v, params[i]) if torch.is_tensor(v) and v.shape == params[i].shape else v
            for k, v in s.items()}
        for i, s in state["state"].items()
    }
    return out


class FullView:
    """What `safetensors.torch.save_model` needs of a module (its `state_dict()`), with every
    sharded tensor gathered once (collective), so tied weights stay one shared tensor and are
    written once, as for a plain model. A plain model's state dict is passed through."""

    def __init__(self, model: nn.Module):
        gathered: dict[int, torch.Tensor] = {}
        self._state = {}
        for name, t in model.state_dict(keep_vars=True).items():
            if id(t) not in gathered:
                # clone: an all-gather result may be a view into a padded buffer (safetensors
                # then refuses to dedupe tied weights)
                gathered[id(t)] = full(t.detach()).clone() if is_sharded(t) else t.detach()
            self._state[name] = gathered[id(t)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._state)


def full_model(model: nn.Module):
    """The model itself when nothing is sharded, else its gathered `FullView` (collective)."""
    return FullView(model) if any(is_sharded(p) for p in model.parameters()) else model


def load_weights(path: Path, model: nn.Module) -> None:
    """Loads a gathered `model.safetensors` into a (possibly sharded) model; each rank keeps its
    shard. Tied weights saved once (safetensors `save_model`) are found under any of their names."""
    from safetensors.torch import load_file

    saved = load_file(str(path))
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    with torch.no_grad():
        for name, p in model.named_parameters():
            found = next((saved[n] for n in names[id(p)] if n in saved), None)
            if found is None or tuple(found.shape) != tuple(p.shape):
                from swp.errors import CheckpointError

                raise CheckpointError(f"checkpoint {path.parent} does not fit this model ({name})")
            p.copy_(distribute_like(found.to(p.dtype), p))
        for name, b in model.named_buffers():
            if name in saved:
                b.copy_(saved[name])


class ShardedCheckpoint(Checkpoint):
    """A gathered checkpoint read by every rank: weights go straight into the shards."""

    def load_weights(self, model: nn.Module) -> None:
        if any(is_sharded(p) for p in model.parameters()):
            load_weights(self.path / "model.safetensors", model)
        else:
            super().load_weights(model)


class GatheredCheckpointStore(CheckpointStore):
    """`CheckpointStore` for a multi-rank run: every rank calls `save` (the DTensors are
    gathered), rank 0 writes, all ranks wait for the write; every rank can read `latest`.

    The world size is recorded in each checkpoint (`world_size`) for the record only: a gathered
    checkpoint resumes at any world size.
    """

    def save(self, model: nn.Module, state: dict, global_step: int, extra_files=None) -> Path:
        state = full_state(state) | {"world_size": env.world_size()}
        path = None
        whole = full_model(model)
        if env.is_main():
            path = super().save(whole, state, global_step, extra_files)
        env.barrier()  # nobody goes on (or reads it) before it is whole
        path = env.broadcast_object(str(path) if path is not None else None)
        self.last = Path(path)
        return self.last

    def latest(self):
        ckpt = super().latest()
        if ckpt is None:
            return None
        return ShardedCheckpoint(ckpt.path, ckpt.stage, ckpt.step, ckpt.state, ckpt.config)

    def clear(self) -> None:
        env.barrier()
        if env.is_main():
            super().clear()


class AgreedStopRequest(StopRequest):
    """A stop request every rank agrees on: `requested` is true on all ranks as soon as any rank
    got SIGTERM/SIGINT (one tiny all-reduce per check), so they all stop at the same step and
    write one checkpoint together. torchrun forwards the signal to every rank, but not at the
    same instant; without agreement one rank would wait in a collective the others never join.
    Every call site of `requested` in the run is reached by all ranks alike (same control flow).
    """

    @property
    def requested(self) -> bool:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.signum is not None
        flag = torch.tensor([self.signum or 0], dtype=torch.int64,
                            device=torch.device("cuda", torch.cuda.current_device())
                            if dist.get_backend() == "nccl" else torch.device("cpu"))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if int(flag) and self.signum is None:
            self.signum = int(flag)  # another rank's signal: stop as if it had come here
        return self.signum is not None


def for_ranks(store: CheckpointStore | None, resume: Checkpoint | None):
    """The run's checkpoint store and resume checkpoint, as every rank of a multi-rank job uses
    them (gathered writes by rank 0, shard-aware reads); unchanged in a single process."""
    if env.world_size() == 1:
        return store, resume
    if store is not None:
        store = GatheredCheckpointStore(store.folder, store.every, store.keep, store.config,
                                        store.metrics_path if env.is_main() else None)
    if resume is not None:
        resume = ShardedCheckpoint(resume.path, resume.stage, resume.step, resume.state, resume.config)
    return store, resume
