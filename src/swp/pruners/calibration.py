"""Model traversal for the pruners that see activations (Wanda, SparseGPT, activation-aware SWP):
which module owns each pruned weight, hooks that hand each module's inputs to the pruning math,
and the blocks SparseGPT prunes one after another.

The math itself (norms, Hessians, reconstruction) is in `swp.pruning`; nothing here knows a
model family: modules are found from the weights' names and blocks from the model's largest
``nn.ModuleList`` of prunable layers (a transformer's list of blocks).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from swp.distributed.env import Reduce, local_only
from swp.pruning.wanda import add_squared_norms_


class _StopForward(Exception):
    """Raised by a hook once the layers of interest have run, to skip the rest of the forward."""


def owning_modules(model: nn.Module, names) -> dict[str, nn.Module]:
    """The Linear (or Conv1D) module whose ``weight`` each selected parameter name is."""
    return {n: model.get_submodule(n.rsplit(".", 1)[0]) if "." in n else model for n in names}


@contextlib.contextmanager
def input_hooks(modules: dict[str, nn.Module], see: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    """Calls ``see(name, input)`` with each module's input on every forward while active."""
    handles = [m.register_forward_pre_hook(lambda _m, args, n=n: see(n, args[0])) for n, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def run_batches(model: nn.Module, batches: list, forward, stop_after: nn.Module | None = None) -> None:
    """Runs ``forward(model, batch)`` on every batch in eval mode; with `stop_after`, each forward
    ends as soon as that module has returned (the later layers' work is not needed)."""
    handle = None
    if stop_after is not None:
        def stop(_m, _args, _out):
            raise _StopForward

        handle = stop_after.register_forward_hook(stop)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            try:
                forward(model, batch)
            except _StopForward:
                pass
    finally:
        model.train(was_training)
        if handle is not None:
            handle.remove()


def input_norms(model: nn.Module, names, batches: list, forward, stop_after: nn.Module | None = None,
                reduce: Reduce = local_only) -> tuple[dict[str, torch.Tensor], int]:
    """||X_j||_2 of every input feature of every named layer over the calibration batches (one
    forward pass per batch, all layers at once, ended early after `stop_after`), and the tokens
    the first layer saw.

    Under DDP each rank sees its slice of the batches; `reduce` sums the squared norms and the
    token count over the ranks before the square root, so every rank gets the norms of all the
    batches, as one process would."""
    modules = owning_modules(model, names)
    sq: dict[str, torch.Tensor] = {}
    tokens = dict.fromkeys(modules, 0)

    def see(name: str, x: torch.Tensor) -> None:
        if name not in sq:
            sq[name] = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
        tokens[name] += add_squared_norms_(sq[name], x)

    with input_hooks(modules, see):
        run_batches(model, batches, forward, stop_after)
    missing = [n for n in modules if n not in sq]
    if missing:
        raise RuntimeError(f"calibration never reached {missing[0]} ({len(missing)} layers): "
                           "is it used in the forward?")
    if not sq:
        return {}, 0
    for name in modules:  # the same order on every rank
        reduce(sq[name])
    first = next(iter(modules))
    seen = reduce(torch.tensor([tokens[first]], dtype=torch.int64, device=sq[first].device))
    return {n: v.sqrt() for n, v in sq.items()}, int(seen.item())


def sequential_blocks(model: nn.Module, names) -> list[tuple[nn.Module | None, list[str]]]:
    """The pruned layers grouped by block, in the model's order: the children of the
    ``nn.ModuleList`` holding most of them (a transformer's blocks), each with the block module
    (whose output ends the forward early). Layers outside that list form one last group, run
    with the whole forward (None)."""
    names = list(names)
    best, best_prefix, best_count = None, "", 0
    for prefix, module in model.named_modules():
        if isinstance(module, nn.ModuleList):
            count = sum(n.startswith(f"{prefix}.") for n in names) if prefix else len(names)
            if count > best_count:
                best, best_prefix, best_count = module, prefix, count
    groups: list[tuple[nn.Module | None, list[str]]] = []
    taken: set[str] = set()
    if best is not None:
        for key, child in best.named_children():
            start = f"{best_prefix}.{key}." if best_prefix else f"{key}."
            members = [n for n in names if n.startswith(start)]
            if members:
                groups.append((child, members))
                taken.update(members)
    rest = [n for n in names if n not in taken]
    if rest:
        groups.append((None, rest))
    return groups
