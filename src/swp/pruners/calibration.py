"""Model traversal for the pruners that see activations (Wanda, SparseGPT, activation-aware SWP):
which module owns each pruned weight, hooks that hand each module's inputs to the pruning math,
and the block-by-block pass of sequential Wanda and SparseGPT.

The math itself (norms, Hessians, reconstruction) is in `swp.pruning`; nothing here knows a
model family: modules are found from the weights' names and blocks from the model's declared
structure (`swp.models.structure`).
"""

from __future__ import annotations

import contextlib
import sys
from functools import partial
from typing import Callable, Iterator

import torch
from torch import nn

from swp.distributed.env import Reduce, local_only
from swp.errors import ConfigError
from swp.models.structure import model_structure
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
    return measured_norms(owning_modules(model, names), partial(run_batches, model, batches, forward, stop_after),
                          reduce)


def measured_norms(modules: dict[str, nn.Module], run: Callable[[], None],
                   reduce: Reduce = local_only) -> tuple[dict[str, torch.Tensor], int]:
    """`input_norms` of the given layers while `run()` feeds them (the whole forward, or one block)."""
    sq: dict[str, torch.Tensor] = {}
    tokens = dict.fromkeys(modules, 0)

    def see(name: str, x: torch.Tensor) -> None:
        if name not in sq:
            sq[name] = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
        tokens[name] += add_squared_norms_(sq[name], x)

    with input_hooks(modules, see):
        run()
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


# ---------------------------------------------------------------- block by block

Stack = list[tuple[str, list[str]]]  # consecutive blocks of one parent, each with its pruned layers


def block_groups(model: nn.Module, names) -> tuple[list[Stack], list[str]]:
    """The pruned layers grouped by the model's declared blocks: stacks of consecutive blocks
    under one parent (a decoder's layers; a vision-language model has two stacks), each trimmed
    to its blocks from the first to the last that hold pruned layers, and the layers outside
    every block.

    Raises:
        UndeclaredStructure: the model declares no structure.
    """
    names = list(names)
    stacks: list[Stack] = []
    parent = None
    taken: set[str] = set()
    for path in model_structure(model).blocks:
        members = [n for n in names if n.startswith(f"{path}.")]
        taken.update(members)
        if path.rpartition(".")[0] != parent or not stacks:
            stacks.append([])
            parent = path.rpartition(".")[0]
        stacks[-1].append((path, members))
    trimmed = [_trim(stack) for stack in stacks]
    return [s for s in trimmed if s], [n for n in names if n not in taken]


def _trim(stack: Stack) -> Stack:
    """The blocks from the first to the last one holding pruned layers (none when no block does)."""
    held = [i for i, (_, members) in enumerate(stack) if members]
    return stack[held[0]:held[-1] + 1] if held else []


def sequential_blocks(model: nn.Module, names) -> list[tuple[nn.Module | None, list[str]]]:
    """The pruned layers grouped by block, in the model's order, each with its block module;
    the layers outside every block form one last group (None: run with the whole forward)."""
    stacks, rest = block_groups(model, names)
    groups = [(model.get_submodule(path), members) for stack in stacks for path, members in stack if members]
    return groups + ([(None, rest)] if rest else [])


class BlockInputs:
    """What the blocks of one stack received on each calibration batch, recorded by hooks while
    a forward ran: the first block's hidden states, and every block's other arguments (a Hugging
    Face decoder layer's attention mask, position embeddings, ...; they may differ per block,
    e.g. sliding-window layers get their own mask), with the autocast state the first block ran
    under. It also checks that each block's input is the very tensor the block before returned
    (``hidden = block(hidden, ...)``), which replaying the blocks on each other's outputs relies on.

    Holds one hidden-state tensor per batch (batch x tokens x width) until it is dropped.
    """

    def __init__(self, paths: tuple[str, ...]):
        self.paths = paths
        self.hidden: list[torch.Tensor] = []
        self.calls: dict[str, list[tuple[tuple, dict]]] = {p: [] for p in paths}
        self.autocast: tuple[str, bool, torch.dtype] | None = None
        self._returned: torch.Tensor | None = None  # the previous block's output, until the next one starts

    def called(self, path: str, args: tuple, kwargs: dict) -> None:
        """Records one call of the block at `path` (a forward pre-hook)."""
        if not args or not isinstance(args[0], torch.Tensor):
            raise RuntimeError(f"sequential calibration needs {path} called with its hidden states as the first "
                               "positional argument")
        if path == self.paths[0]:
            self.hidden.append(args[0])
            kind = args[0].device.type
            self.autocast = (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
        elif args[0] is not self._returned:
            before = self.paths[self.paths.index(path) - 1]
            raise ConfigError(f"sequential calibration needs each block to take the previous one's output, but "
                              f"{path} does not take {before}'s (the model changes it in between): declare blocks "
                              "that include that step")
        self._returned = None
        self.calls[path].append((_without_caches(args[1:]), _without_caches(kwargs)))

    def returned(self, out) -> None:
        """Notes a block's output (a forward hook), for the next block's check."""
        self._returned = _hidden_states(out)


@contextlib.contextmanager
def recording(model: nn.Module, paths: tuple[str, ...], stop: bool = False) -> Iterator[BlockInputs]:
    """Records the inputs of the blocks at `paths` during the forwards run inside; with `stop`,
    each forward ends as the last of them is about to run (nothing after it is needed)."""
    record = BlockInputs(paths)

    def called(path: str):
        def pre(_module, args, kwargs):
            record.called(path, args, kwargs)
            if stop and path == paths[-1]:
                raise _StopForward

        return pre

    handles = []
    for path in paths:
        block = model.get_submodule(path)
        handles.append(block.register_forward_pre_hook(called(path), with_kwargs=True))
        handles.append(block.register_forward_hook(lambda _m, _args, out: record.returned(out)))
    try:
        yield record
    finally:
        for h in handles:
            h.remove()


def first_stack_recording(model: nn.Module, names) -> contextlib.AbstractContextManager:
    """`recording` of the first stack holding pruned layers, for a forward that runs anyway
    (Wanda's dense pass under OWL); a no-op context (None) when no block holds one."""
    stacks, _ = block_groups(model, names)
    return recording(model, tuple(p for p, _ in stacks[0])) if stacks else contextlib.nullcontext()


def block_by_block(model: nn.Module, names, batches: list, forward,
                   recorded: BlockInputs | None = None) -> Iterator[tuple[list[str], Callable[[], None]]]:
    """The sequential pass of SparseGPT and Wanda (IST-DASLab/sparsegpt, locuslab/wanda): yields
    each block's pruned layers with a ``run()`` that runs the block on its calibration inputs
    (the caller's hooks measure them meanwhile); the caller prunes the layers before asking for
    the next, and the pruned block then runs once more to make the next block's inputs.

    The first block's inputs come from one forward per batch that stops there (or from
    `recorded`, made during a dense forward the caller ran anyway), so every block runs twice
    instead of the model running from the embedding up to each block in turn. The captured
    hidden states of all calibration batches are held meanwhile. Layers outside the blocks come
    last, measured with the whole forward. The model is in eval mode throughout; blocks run
    under the autocast state the forward gave the first block, without gradients.

    Raises:
        UndeclaredStructure: the model declares no structure.
    """
    stacks, rest = block_groups(model, names)
    was_training = model.training
    model.eval()
    try:
        for stack in stacks:
            paths = tuple(p for p, _ in stack)
            if recorded is None or recorded.paths != paths:
                with recording(model, paths, stop=True) as recorded:
                    run_batches(model, batches, forward)
            yield from _through_stack(model, stack, recorded)
            recorded = None  # the next stack's inputs come from the pruned blocks: recorded anew
        if rest:
            yield rest, partial(run_batches, model, batches, forward)
    finally:
        model.train(was_training)


def _through_stack(model: nn.Module, stack: Stack, recorded: BlockInputs):
    """`block_by_block` within one stack: measure and prune each block, then feed its outputs on."""
    hidden = recorded.hidden
    for i, (path, members) in enumerate(stack):
        block, calls = model.get_submodule(path), recorded.calls[path]
        if members:
            yield members, partial(_run_block, block, hidden, calls, recorded.autocast)
        if i + 1 < len(stack):
            hidden = [_hidden_states(out) for out in _run_block(block, hidden, calls, recorded.autocast)]


@torch.no_grad()
def _run_block(block: nn.Module, hidden: list[torch.Tensor], calls: list[tuple[tuple, dict]],
               autocast: tuple[str, bool, torch.dtype]) -> list:
    """The block's outputs on every batch's recorded inputs, with `hidden` as its hidden states."""
    kind, enabled, dtype = autocast
    with torch.autocast(kind, dtype=dtype, enabled=enabled):
        return [block(h, *args, **kwargs) for h, (args, kwargs) in zip(hidden, calls, strict=True)]


def _hidden_states(out) -> torch.Tensor:
    """A block's output hidden states: the output itself, or its first element (older decoder
    layers return a tuple)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise RuntimeError(f"sequential calibration needs a block to return its hidden states, got {type(out).__name__}")


def _without_caches(values):
    """Recorded arguments with transformers' key/value caches replaced by None: a block replayed
    with one would append its keys again and attend over them twice."""
    cache = getattr(sys.modules.get("transformers.cache_utils"), "Cache", None)
    if cache is None:
        return values
    if isinstance(values, dict):
        return {k: None if isinstance(v, cache) else v for k, v in values.items()}
    return tuple(None if isinstance(v, cache) else v for v in values)
