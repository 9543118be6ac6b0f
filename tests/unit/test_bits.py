"""Masks at one bit a weight: the packing matches numpy's little-order packbits for every length
and shape, reading a packed mask gives the mask back, and a MaskSet holds numel/8 bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from swp.pruning.bits import PackedMasks, pack_bits, unpack_bits
from swp.pruning.masks import MaskSet

SHAPES = [(n,) for n in range(0, 34)] + [(3, 5), (7, 9, 2), (64, 48), (1, 1), (0, 4)]


@pytest.mark.parametrize("shape", SHAPES)
def test_pack_matches_numpy_and_unpack_inverts_it(shape):
    g = torch.Generator().manual_seed(math.prod(shape) + len(shape))
    bits = torch.rand(shape, generator=g) < 0.4
    packed = pack_bits(bits)
    reference = np.packbits(bits.numpy().reshape(-1).astype(np.uint8), bitorder="little")
    assert packed.dtype == torch.uint8 and torch.equal(packed, torch.from_numpy(reference))
    assert torch.equal(unpack_bits(packed, bits.numel()).view(shape), bits)


def test_all_ones_and_all_zeros_survive_the_padding():
    for fill in (True, False):
        bits = torch.full((13,), fill)
        assert pack_bits(bits).tolist() == ([255, 31] if fill else [0, 0])
        assert torch.equal(unpack_bits(pack_bits(bits), 13), bits)


def _masks():
    g = torch.Generator().manual_seed(0)
    return {"a": torch.rand(5, 7, generator=g) < 0.5, "b": torch.rand(9, generator=g) < 0.5,
            "c": torch.rand(2, 3, 4, generator=g) < 0.5}


def test_packed_masks_read_back_in_order_with_shape():
    masks = _masks()
    packed = PackedMasks(masks)
    assert list(packed) == ["a", "b", "c"] and len(packed) == 3
    for name, keep in masks.items():
        assert packed[name].dtype == torch.bool and torch.equal(packed[name], keep)
    assert packed.nbytes() == sum(math.ceil(k.numel() / 8) for k in masks.values()) == 5 + 2 + 3
    assert list(packed.reordered(["c", "a", "b"])) == ["c", "a", "b"]
    assert torch.equal(packed.reordered(["c", "a", "b"])["a"], masks["a"])
    del packed["b"]
    assert list(packed) == ["a", "c"]
    with pytest.raises(KeyError):
        packed["b"]


def test_writing_into_a_read_mask_changes_nothing_until_assigned_back():
    masks = _masks()
    packed = PackedMasks(masks)
    read = packed["a"]
    read.fill_(False)
    assert torch.equal(packed["a"], masks["a"])  # a fresh tensor each read
    packed["a"] = read
    assert not packed["a"].any()


def test_a_maskset_holds_its_masks_at_a_bit_a_weight_and_applies_them():
    torch.manual_seed(0)
    params = {n: torch.nn.Parameter(torch.randn(k.shape)) for n, k in _masks().items()}
    keep = _masks()
    masks = MaskSet(params, keep)
    assert isinstance(masks.keep, PackedMasks) and masks.keep.nbytes() == 10
    masks.apply()
    for n, p in params.items():
        assert torch.equal(p.detach() != 0, keep[n]) and not torch.signbit(p.detach()[~keep[n]]).any()
    assert masks.sparsity() == sum(int((~k).sum()) for k in keep.values()) / sum(k.numel() for k in keep.values())
