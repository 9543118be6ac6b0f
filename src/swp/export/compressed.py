"""Exports a run's dense checkpoint to the compressed form and reports what it saved."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file

from swp.export.hf_pretrained import ExportMismatchError  # one error type for every export check
from swp.export.sparse_format import bit_identical, load_compressed, save_compressed


def export_compressed(dense_path: Path, out_path: Path, pruned: list[str] | None = None) -> dict:
    """Writes `out_path` from the dense safetensors file, checks it rebuilds every tensor bit for
    bit, and returns a size report.

    Args:
        dense_path: a dense safetensors checkpoint (a run's model.safetensors).
        out_path: where the compressed file goes.
        pruned: names of the pruned tensors (the run's masks), for the size ratio over them;
            None reports only the whole-file figures.

    Raises:
        ExportMismatchError: a rebuilt tensor differs from the original in any bit.
    """
    dense = load_file(str(dense_path))
    index = save_compressed(out_path, dense)
    rebuilt = load_compressed(out_path)
    bad = [n for n in dense if not bit_identical(dense[n], rebuilt[n])]
    if bad or set(rebuilt) != set(dense):
        raise ExportMismatchError(f"{out_path}: {len(bad)} tensors do not rebuild exactly, e.g. {bad[:3]}")
    dense_file, sparse_file = os.path.getsize(dense_path), os.path.getsize(out_path)
    report = {
        "dense_file_bytes": dense_file,
        "compressed_file_bytes": sparse_file,
        "file_ratio": sparse_file / dense_file,
        "sparsity_overall": _weighted(index, list(index), "sparsity"),
        "encodings": {
            enc: sum(1 for i in index.values() if i["encoding"] == enc) for enc in ("dense", "bitmask", "csr")
        },
        "bit_identical": True,
        "tensors": index,
    }
    if pruned:
        missing = [n for n in pruned if n not in index]
        if missing:
            raise KeyError(f"pruned tensors not in {dense_path}: {missing[:3]}")
        report |= {
            "pruned_dense_bytes": sum(index[n]["dense_bytes"] for n in pruned),
            "pruned_stored_bytes": sum(index[n]["stored_bytes"] for n in pruned),
            "sparsity_pruned_tensors": _weighted(index, pruned, "sparsity"),
        }
        report["pruned_ratio"] = report["pruned_stored_bytes"] / report["pruned_dense_bytes"]
    return report


def _weighted(index: dict, names: list[str], key: str) -> float:
    """Element-weighted mean of a per-tensor figure."""
    total = sum(_numel(index[n]) for n in names)
    return sum(index[n][key] * _numel(index[n]) for n in names) / total if total else 0.0


def _numel(info: dict) -> int:
    n = 1
    for d in info["shape"]:
        n *= d
    return n
