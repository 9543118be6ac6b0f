"""Compressed export: exact rebuild on hand-made tensors, sizes, a real run, HF save_pretrained."""

import json

import pytest
from safetensors.torch import load_file

from scripts import export as export_script
from swp.cli import run
from swp.export.sparse_format import bit_identical, load_compressed


def test_export_of_a_real_60_percent_run(tiny_cfg, tmp_path):
    results = run(tiny_cfg("pruner=swp", "target_sparsity=0.6", "energy=none"))
    assert results["sparsity"] == pytest.approx(0.6, abs=1e-4)
    run_dir = tmp_path / "run"
    report = export_script.main([str(run_dir)])
    out = run_dir / "export"
    saved = json.loads((out / "export.json").read_text())
    assert saved["bit_identical"] and saved["hf_dir"] is None  # our GPT has no save_pretrained
    # The pruned tensors (fp32, 60% zeros) shrink to <= 0.45; embeddings and norms stay dense.
    assert report["pruned_ratio"] <= 0.45
    assert report["pruned_ratio"] == pytest.approx(0.431, abs=0.002)
    assert report["encodings"] == {"dense": 7, "bitmask": 8, "csr": 0}
    dense, back = load_file(str(run_dir / "model.safetensors")), load_compressed(out / "model.sparse.safetensors")
    assert all(bit_identical(dense[n], back[n]) for n in dense)
    assert report["compressed_file_bytes"] < 0.55 * report["dense_file_bytes"]


