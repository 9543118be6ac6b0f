"""Masks applied once and enforced after every optimizer step, so pruned weights stay 0."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from swp.distributed.sharding import count, distribute_like
from swp.errors import RunError
from swp.pruning.bits import PackedMasks


class MaskDriftError(RunError):
    """A weight that the masks prune is not exactly zero."""


class MaskSet:
    """Keep-masks for named parameters, with fused in-place enforcement.

    The masks are held at one bit a weight (`PackedMasks`). For training they are also kept in
    the parameters' dtype, so the enforcement of every step (`mask_grads`, `enforce`, a gradual
    pruner's `apply(optimizer)`) is one foreach multiply, which costs well under 1% of a training
    step at every model size (a bool multiplier is about 2.5x slower, `masked_fill_` about 8x).
    Those copies (4 bytes a weight in float32) are made on first use by one of these, so the
    one-time `apply()` after one-shot pruning, with the bool masks, leaves a run that never
    trains without them.

    Under FSDP2 the parameters are DTensors; each mask is then a DTensor with its weight's mesh
    and placements (a full mask, e.g. from a checkpoint, is split like the weight), so
    enforcement stays local and the counts of `check` / `sparsity` are summed over the ranks.
    """

    def __init__(self, params: dict[str, nn.Parameter], keep: Mapping[str, torch.Tensor]):
        if set(params) != set(keep):
            raise ValueError("masks and parameters must name the same tensors")
        self.names = list(params)
        self.params = [params[n] for n in self.names]
        self.keep = PackedMasks()  # one bit a weight; consumers read bool tensors, unpacked per name
        for n in self.names:  # one name at a time: no second bool copy of every mask at once
            self.keep[n] = distribute_like(keep[n].to(device=params[n].device, dtype=torch.bool), params[n])
        self._mult: list[torch.Tensor] | None = None  # the masks in the weights' dtype, made on first use

    def _multipliers(self) -> list[torch.Tensor]:
        """The masks in the parameters' dtype, for the per-step multiplies (made once)."""
        if self._mult is None:
            self._mult = [self.keep[n].to(p.dtype) for n, p in zip(self.names, self.params)]
        return self._mult

    @torch.no_grad()
    def apply(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zeroes pruned weights and their optimizer state (so momentum cannot revive them).
        Without an optimizer and before any per-step use (the one-time application after
        pruning) it multiplies by the bool masks and makes no float copies."""
        if optimizer is None and self._mult is None:
            for n, p in zip(self.names, self.params):  # each bool mask unpacked only for its multiply
                p.mul_(self.keep[n])
        else:
            torch._foreach_mul_(self.params, self._multipliers())
        # w * 0 is -0.0 for negative w; adding +0.0 makes every pruned weight +0.0, so a
        # compressed checkpoint (bitmask + kept values) needs no sign bits to be bit-exact.
        torch._foreach_add_(self.params, 0.0)
        if optimizer is not None:
            for p, m in zip(self.params, self._multipliers()):
                for value in optimizer.state.get(p, {}).values():
                    if torch.is_tensor(value) and value.shape == p.shape:
                        value.mul_(m)

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zeroes the gradients of pruned weights before the optimizer step."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, [m for p, m in zip(self.params, self._multipliers()) if p.grad is not None])

    @torch.no_grad()
    def enforce(self) -> None:
        """Re-zeroes pruned weights after an optimizer step (AdamW's decay and momentum move them)."""
        torch._foreach_mul_(self.params, self._multipliers())
        torch._foreach_add_(self.params, 0.0)  # -0.0 -> +0.0, as in `apply`

    @torch.no_grad()
    def check(self, where: str) -> None:
        """Raises MaskDriftError if any pruned weight is not exactly zero."""
        for name, p in zip(self.names, self.params):
            bad = count(p.detach() * (~self.keep[name]), lambda x: x != 0)
            if bad:
                raise MaskDriftError(f"{where}: {bad} pruned weights of {name} are non-zero")

    def sparsity(self) -> float:
        """Fraction of the masked tensors that is pruned (from the masks, not the weights)."""
        return _pruned_fraction(self.keep)


def _pruned_fraction(keep: dict[str, torch.Tensor]) -> float:
    total = sum(k.numel() for k in keep.values())
    return sum(count(k, lambda x: ~x) for k in keep.values()) / total if total else 0.0
