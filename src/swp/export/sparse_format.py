"""A compressed safetensors form for pruned checkpoints, and its exact inverse.

Each tensor is stored in whichever of three encodings is smallest:

- ``dense``: as is (embeddings, norms, anything barely sparse).
- ``bitmask``: one bit per element saying "non-zero" (`swp.pruning.bits.pack_bits`, the layout
  of ``np.packbits(..., bitorder="little")``) plus the non-zero values in row-major order.
  Costs numel/8 + nnz * itemsize bytes, so an fp32 tensor at 60% sparsity takes 1/32 + 0.4 =
  0.43 of its dense size.
- ``csr``: the tensor viewed as (rows, last dim); row pointers, column indices in the smallest
  integer type that fits, and the values. Smaller than the bitmask only at high sparsity
  (fp32 with int16 columns: beyond about 94%).

Zeros are not all alike in IEEE floats: a pruned weight multiplied by 0 can be -0.0. To rebuild
the bits exactly, a tensor holding any -0.0 also stores one sign bit per zero (``negzero``).
The pipeline's masks write +0.0, so its checkpoints never pay for this.

Layout in the file: tensor ``w`` is stored as ``w`` (dense) or ``w::mask``/``w::values``/
``w::negzero`` (bitmask) or ``w::indptr``/``w::indices``/``w::values``/``w::negzero`` (csr);
the safetensors metadata holds ``format`` and, under ``tensors``, a JSON object giving each
tensor's encoding, shape and dtype.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from swp.pruning.bits import pack_bits, unpack_bits

FORMAT = "swp-sparse-v1"
SEP = "::"


def _index_dtype(limit: int) -> torch.dtype:
    """The smallest integer dtype holding 0..limit-1 (uint8 and int16/int32/int64)."""
    if limit <= 2**8:
        return torch.uint8
    if limit <= 2**15:
        return torch.int16
    return torch.int32 if limit <= 2**31 else torch.int64


def _negative_zeros(flat: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
    """Sign bits of the zeros (in order) if any zero is -0.0, else None."""
    if not flat.is_floating_point():
        return None
    signs = torch.signbit(flat[~keep])
    return signs if bool(signs.any()) else None


def encode_tensor(name: str, tensor: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict]:
    """Picks the smallest encoding of one tensor; returns (stored tensors, its metadata entry)."""
    t = tensor.detach().cpu().contiguous()
    info = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "encoding": "dense"}
    dense = {name: t}
    if t.dtype == torch.bool or t.numel() == 0:
        return dense, info
    flat = t.reshape(-1)
    keep = flat != 0
    nnz = int(keep.sum())
    if nnz == flat.numel():
        return dense, info
    negzero = _negative_zeros(flat, keep)
    sign_bytes = 0 if negzero is None else math.ceil((flat.numel() - nnz) / 8)
    item = t.element_size()
    cols = t.shape[-1] if t.dim() >= 1 else 1
    rows = flat.numel() // cols
    idx_dtype = _index_dtype(cols)
    ptr_dtype = torch.int32 if nnz < 2**31 else torch.int64
    sizes = {
        "dense": flat.numel() * item,
        "bitmask": math.ceil(flat.numel() / 8) + nnz * item + sign_bytes,
        "csr": (rows + 1) * ptr_dtype.itemsize + nnz * (idx_dtype.itemsize + item) + sign_bytes,
    }
    encoding = min(sizes, key=lambda k: (sizes[k], k != "dense"))  # ties keep it dense
    if encoding == "dense":
        return dense, info
    info["encoding"] = encoding
    out = {f"{name}{SEP}values": flat[keep].clone()}
    if negzero is not None:
        out[f"{name}{SEP}negzero"] = pack_bits(negzero.cpu())
    if encoding == "bitmask":
        out[f"{name}{SEP}mask"] = pack_bits(keep.cpu())
    else:
        keep2d = keep.view(rows, cols)
        counts = keep2d.sum(dim=1)
        indptr = torch.zeros(rows + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(counts, 0)
        out[f"{name}{SEP}indptr"] = indptr.to(ptr_dtype)
        out[f"{name}{SEP}indices"] = keep2d.nonzero()[:, 1].to(idx_dtype)
    return out, info


def decode_tensor(name: str, info: dict, stored: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rebuilds one dense tensor, bit for bit, from its stored parts."""
    if info["encoding"] == "dense":
        return stored[name]
    shape, dtype = info["shape"], getattr(torch, info["dtype"])
    numel = math.prod(shape)
    values = stored[f"{name}{SEP}values"]
    if info["encoding"] == "bitmask":
        keep = unpack_bits(stored[f"{name}{SEP}mask"], numel)
    elif info["encoding"] == "csr":
        cols = shape[-1] if shape else 1
        indptr = stored[f"{name}{SEP}indptr"].long()
        rows = torch.repeat_interleave(torch.arange(len(indptr) - 1), indptr[1:] - indptr[:-1])
        keep = torch.zeros(numel, dtype=torch.bool)
        keep[rows * cols + stored[f"{name}{SEP}indices"].long()] = True
    else:
        raise ValueError(f"{name}: unknown encoding {info['encoding']!r}")
    out = torch.zeros(numel, dtype=dtype)
    out[keep] = values  # positions ascend in both encodings, matching the stored order
    signs = stored.get(f"{name}{SEP}negzero")
    if signs is not None:
        zero_at = (~keep).nonzero().squeeze(1)
        out[zero_at[unpack_bits(signs, len(zero_at))]] = -0.0
    return out.view(shape)


def compress(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Encodes every tensor; returns (tensors to store, per-tensor metadata)."""
    stored, index = {}, {}
    for name, t in tensors.items():
        if SEP in name:
            raise ValueError(f"tensor name {name!r} contains the reserved separator {SEP!r}")
        parts, info = encode_tensor(name, t)
        stored |= parts
        info["stored_bytes"] = sum(p.numel() * p.element_size() for p in parts.values())
        info["dense_bytes"] = t.numel() * t.element_size()
        info["sparsity"] = float((t == 0).sum()) / t.numel() if t.numel() and t.dtype != torch.bool else 0.0
        index[name] = info
    return stored, index


def decompress(stored: dict[str, torch.Tensor], index: dict[str, dict]) -> dict[str, torch.Tensor]:
    """The inverse of `compress`."""
    return {name: decode_tensor(name, info, stored) for name, info in index.items()}


def save_compressed(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> dict[str, dict]:
    """Writes the compressed safetensors file; returns the per-tensor index (with byte counts).

    Args:
        path: the file to write.
        tensors: the dense tensors (e.g. a pruned model's state dict).
        metadata: extra string metadata kept in the file (e.g. the run's sparsity).
    """
    stored, index = compress(tensors)
    header = {"format": FORMAT, "tensors": json.dumps(index)} | dict(metadata or {})
    save_file(stored, str(path), metadata=header)
    return index


def load_compressed(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a file written by `save_compressed` back into dense tensors, bit for bit."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (format={meta.get('format')!r})")
        stored = {k: f.get_tensor(k) for k in f.keys()}
    return decompress(stored, json.loads(meta["tensors"]))


def bit_identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and bytes (so -0.0 differs from +0.0 and NaN payloads count)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a8 = a.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    b8 = b.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    return torch.equal(a8, b8)
