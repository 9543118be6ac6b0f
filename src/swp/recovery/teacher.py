"""The teacher of distillation: the dense model as it was just before pruning, frozen.

A deep copy of the model in eval mode whose parameters need no gradients; it is never given to
an optimizer, so it cannot change while the student recovers. Its weights travel with every
checkpoint written while it exists (the state dict of `Teacher.state_dict`), so a run resumed
anywhere after pruning distils from exactly the same teacher as an uninterrupted one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class Teacher:
    """A frozen copy of `model`.

    Args:
        model: the dense model (copied; later changes to it do not reach the teacher).
        state: if given, the teacher's weights (from a checkpoint) replace the copied ones.
    """

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor] | None = None):
        self.module = copy.deepcopy(model)
        if state is not None:
            self.module.load_state_dict(state)
        self.module.eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, forward, batch):
        """`forward(module, batch)` on the teacher, without gradients."""
        return forward(self.module, batch)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The teacher's weights (tied ones shared: torch.save stores them once)."""
        return {k: v.detach() for k, v in self.module.state_dict().items()}

    def bytes(self) -> int:
        """Memory the teacher adds: each parameter and buffer once."""
        seen, total = set(), 0
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
        return total


class BlockOutputs:
    """Records the output hidden states of a list of blocks during a forward pass.

    A hook keeps the last output of each block (the first element when a block returns a tuple,
    as some Hugging Face layers do); re-running a block (gradient checkpointing recomputes it
    in backward) only overwrites its entry, so `take` always sees one tensor per block.
    """

    def __init__(self, blocks: list[nn.Module]):
        self.outputs: dict[int, torch.Tensor] = {}
        self.count = len(blocks)
        self.handles = [block.register_forward_hook(self._hook(i)) for i, block in enumerate(blocks)]

    def _hook(self, index: int):
        def hook(module, args, output):
            self.outputs[index] = output[0] if isinstance(output, (tuple, list)) else output
        return hook

    def clear(self) -> None:
        self.outputs.clear()

    def take(self) -> list[torch.Tensor]:
        """The recorded outputs in block order, then forgets them."""
        if len(self.outputs) != self.count:
            raise RuntimeError(f"{len(self.outputs)} of {self.count} blocks ran in the forward pass")
        out = [self.outputs[i] for i in range(self.count)]
        self.outputs.clear()
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.outputs.clear()
