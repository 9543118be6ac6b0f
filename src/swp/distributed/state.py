"""Checkpoints and run outputs of a multi-rank run.

Two layouts, chosen by `checkpoint.sharded`:

- *gathered* (the default): every DTensor in the run's state (FSDP2 weights, AdamW moments,
  SWP's tracked state, masks) is all-gathered to a full tensor, rank 0 writes it with the run's
  usual atomic, checksummed writer, and every rank reads the same folder on resume and keeps
  its own shard. World-size independent (it resumes at any world size, and in one process);
  needs the full state in rank 0's host memory.
- *sharded* (`checkpoint.sharded=true`, FSDP2): `torch.distributed.checkpoint` writes each
  rank's shards of the weights and of every DTensor in the state (one file per rank, nothing
  gathered), rank 0 adds the plain state with DTensors replaced by placeholders, and the folder
  is sealed like every checkpoint (checksums of every file, manifest last, atomic rename). On
  resume each rank reads its own shards straight into DTensors placed like the run's. Resumed
  at the world size that wrote it (another one is refused in one line).

Every function here is collective under FSDP2: all ranks call it, in the same order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from swp.distributed import env
from swp.distributed.sharding import distribute_like, full, is_sharded
from swp.errors import ConfigError
from swp.infra.checkpoint import Checkpoint, CheckpointStore, cleaned_on_failure, seal_checkpoint
from swp.infra.signals import StopRequest

SHARDS = "shards"  # the torch.distributed.checkpoint folder inside a sharded checkpoint
_PLACEHOLDER = "__swp_sharded__"  # marks where a DTensor of the state lives in the shards


_DESCEND = object()  # what a `map_state` leaf function returns for values it leaves to the walk


def map_state(obj, leaf, key: str = "state"):
    """`obj` (nested dicts, lists, tuples of tensors and plain data) with ``leaf(value, key)``
    put in place of every value for which it returns something other than `_DESCEND`; `key`
    names the value's place (``state.optimizer.state.0.exp_avg``). Dicts, lists and tuples it
    leaves alone are walked into, in order, so every rank visits the same values in the same order."""
    out = leaf(obj, key)
    if out is not _DESCEND:
        return out
    if isinstance(obj, dict):
        return {k: map_state(v, leaf, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_state(v, leaf, f"{key}.{i}") for i, v in enumerate(obj))
    return obj


def full_state(obj):
    """`obj` with every DTensor replaced by its full tensor (collective: all ranks call it on
    the same structure)."""
    # clone: own storage (the gather may leave a padded view)
    return map_state(obj, lambda v, _: full(v.detach()).clone() if is_sharded(v) else _DESCEND)


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
            return self._own_signal() is not None
        flag = torch.tensor([self._own_signal() or 0], dtype=torch.int64,
                            device=torch.device("cuda", torch.cuda.current_device())
                            if dist.get_backend() == "nccl" else torch.device("cpu"))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        agreed = int(flag)
        if agreed and self.signum is None:
            self.signum = agreed  # another rank's signal: stop as if it had come here
        # The agreed answer, not this rank's state: a signal handled during the all-reduce sets
        # signum here only, and answering from it would stop this rank alone (the others then
        # wait in their next step's collective forever); the next check agrees on it.
        return agreed > 0


def split_sharded(obj):
    """`obj` with every DTensor replaced by a placeholder naming it, and those DTensors by name.

    The placeholder records the global shape, dtype and placements (`Shard(d)` as d, `Replicate`
    as -1), which is all a reader needs to allocate a DTensor to load the shards into."""
    found: dict = {}

    def leaf(value, key):
        if not is_sharded(value):
            return _DESCEND
        found[key] = value
        return {_PLACEHOLDER: key, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
                "placements": [getattr(p, "dim", -1) for p in value.placements]}

    return map_state(obj, leaf), found


def _is_placeholder(value) -> bool:
    return isinstance(value, dict) and _PLACEHOLDER in value


def _empty_like_spec(spec: dict, mesh):
    """An uninitialised DTensor on `mesh` for a placeholder: only this rank's part is allocated."""
    import torch.distributed.tensor as dt
    from torch.distributed.tensor import Replicate, Shard

    placements = [Replicate() if d < 0 else Shard(d) for d in spec["placements"]]
    return dt.empty(spec["shape"], dtype=getattr(torch, spec["dtype"]), device_mesh=mesh, placements=placements)


class DCPCheckpoint(Checkpoint):
    """A sharded checkpoint: `load_weights` reads this rank's shards of the weights and of every
    DTensor of the state (collective), after which `state` holds DTensors placed like the run's."""

    def load_weights(self, model: nn.Module) -> None:
        import torch.distributed.checkpoint as dcp

        mesh = next((p.device_mesh for p in model.parameters() if is_sharded(p)), None)
        if mesh is None:
            raise ConfigError(f"checkpoint {self.path} is sharded (checkpoint.sharded=true): resume it under "
                              f"distributed=fsdp at world size {self.state.get('world_size')}")
        targets = {f"model.{k}": v for k, v in model.state_dict().items()}  # loaded in place

        def allocate(value, _):
            if not _is_placeholder(value):
                return _DESCEND
            targets[value[_PLACEHOLDER]] = _empty_like_spec(value, mesh)
            return value

        map_state(self.state, allocate)
        dcp.load(targets, checkpoint_id=str(self.path / SHARDS))
        self.state = map_state(self.state, lambda v, _: targets[v[_PLACEHOLDER]] if _is_placeholder(v) else _DESCEND)


class ShardedCheckpointStore(CheckpointStore):
    """`CheckpointStore` writing sharded checkpoints with `torch.distributed.checkpoint`
    (collective: every rank calls `save` and `latest`)."""

    def save(self, model: nn.Module, state: dict, global_step: int, extra_files=None) -> Path:
        import torch.distributed.checkpoint as dcp

        path, state = self.path_for(state, global_step), self.with_metrics_position(state)
        tmp = path.parent / f".{path.name}.tmp-sharded"  # one name on every rank
        plain, shards = split_sharded(state)
        shards |= {f"model.{k}": v for k, v in model.state_dict().items()}
        with cleaned_on_failure(tmp, path):
            if env.is_main():
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            env.barrier()
            dcp.save(shards, checkpoint_id=str(tmp / SHARDS))  # collective; returns once all shards are written
            if env.is_main():
                plain = plain | {"layout": "sharded", "world_size": env.world_size()}
                seal_checkpoint(tmp, path, plain, self.config, extra_files, layout="sharded")
                self.drop_old()
        env.barrier()  # nobody goes on (or reads it) before it is sealed
        self.last = path
        return path

    def latest(self):
        ckpt = super().latest()
        return None if ckpt is None else as_rank_checkpoint(ckpt)


def as_rank_checkpoint(ckpt: Checkpoint) -> Checkpoint:
    """A verified checkpoint as this rank reads it: a sharded one from its shards (same world
    size only), a gathered one by keeping this rank's part of each full tensor."""
    sharded = ckpt.state.get("layout") == "sharded"
    if sharded and ckpt.state.get("world_size") != env.world_size():
        raise ConfigError(
            f"checkpoint {ckpt.path} is sharded over {ckpt.state.get('world_size')} ranks; resume it with "
            f"torchrun --nproc_per_node={ckpt.state.get('world_size')} (this job has {env.world_size()})")
    kind = DCPCheckpoint if sharded else ShardedCheckpoint
    return kind(ckpt.path, ckpt.stage, ckpt.step, ckpt.state, ckpt.config)


def for_ranks(store: CheckpointStore | None, resume: Checkpoint | None, sharded: bool = False):
    """The run's checkpoint store and resume checkpoint, as every rank of a multi-rank job uses
    them (gathered or sharded writes, shard-aware reads); unchanged in a single process except
    that a sharded checkpoint is refused there in one line."""
    if env.world_size() == 1:
        if resume is not None and resume.state.get("layout") == "sharded":
            as_rank_checkpoint(resume)  # refuses: a sharded checkpoint needs its world size
        return store, resume
    if store is not None:
        kind = ShardedCheckpointStore if sharded else GatheredCheckpointStore
        store = kind(store.folder, store.every, store.keep, store.config, store.metrics_path if env.is_main() else None)
    if resume is not None:
        resume = as_rank_checkpoint(resume)
    return store, resume
