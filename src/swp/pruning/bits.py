"""Bool tensors kept at one bit an element, and a mapping of keep-masks stored that way.

A model's keep-masks as bool tensors take a byte a weight (101 MiB for SmolLM2-135M's 106M
pruned weights, 6.5 GiB for a 7B model), more than a one-shot pruner's whole working set;
packed they take 1/8 of it. Consumers read a mask as a bool tensor, unpacked on demand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

import torch

from swp.distributed.sharding import is_sharded

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8 bytes on its device: element i of the flattened tensor is bit
    i % 8 of byte i // 8 (``np.packbits(..., bitorder="little")``); the last byte pads with 0."""
    flat = bits.reshape(-1).to(torch.bool)
    pad = -flat.numel() % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    lanes = flat.view(torch.uint8).view(-1, 8) << _SHIFTS.to(flat.device)
    return lanes.sum(dim=1, dtype=torch.uint8)  # distinct bits: the sum is their OR


def unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` bits of `pack_bits`'s bytes, as a flat bool tensor on their device."""
    lanes = (packed.reshape(-1, 1) >> _SHIFTS.to(packed.device)).bitwise_and_(1)
    return lanes.view(-1)[:count].view(torch.bool)


class PackedMasks(MutableMapping[str, torch.Tensor]):
    """Name -> keep-mask, held at one bit a weight; reading a name gives a new bool tensor of
    the mask's shape on its device (so writing into what was read changes nothing stored:
    assign it back). FSDP2's masks (DTensors, each rank's shard) are held as they are."""

    def __init__(self, masks: Mapping[str, torch.Tensor] | None = None):
        self._held: dict[str, tuple[torch.Tensor, torch.Size | None]] = {}
        for name, keep in (masks or {}).items():
            self[name] = keep

    def __setitem__(self, name: str, keep: torch.Tensor) -> None:
        if is_sharded(keep):
            self._held[name] = (keep, None)
        else:
            self._held[name] = (pack_bits(keep), keep.shape)

    def __getitem__(self, name: str) -> torch.Tensor:
        stored, shape = self._held[name]
        if shape is None:
            return stored
        return unpack_bits(stored, shape.numel()).view(shape)

    def __delitem__(self, name: str) -> None:
        del self._held[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def reordered(self, names) -> PackedMasks:
        """The same masks, named in `names`' order (nothing unpacked)."""
        out = PackedMasks()
        out._held = {n: self._held[n] for n in names}
        return out

    def nbytes(self) -> int:
        """Bytes of the stored masks (packed, or the local shards of DTensor masks)."""
        return sum((t.to_local() if shape is None else t).nbytes for t, shape in self._held.values())
