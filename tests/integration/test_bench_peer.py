"""scripts/bench_peer_llmcompressor.py's CPU-cheap parts: the shared inputs, swp's side end to end
on a tiny Llama (llm-compressor's side needs its own venv: not built by the tests), the table."""

from __future__ import annotations

import json

import pytest
import torch

from scripts import bench_peer_llmcompressor as bench
from swp.testing.hf_tiny import HF_TINY, data_files_override


def _overrides(assets) -> list[str]:
    return [*HF_TINY, data_files_override(assets), f"model.name_or_path={assets['llama']}"]


@pytest.mark.slow
def test_swp_side_prunes_the_shared_rows_and_the_table_reads_it(tmp_path, assets):
    text = bench.main(["--tools", "swp", "--methods", "wanda,sparsegpt", "--work", str(tmp_path), "--overrides",
                       *_overrides(assets)])
    # The calibration rows are the ones a run draws: the pruner's seed and batch count, 4 rows each.
    rows = json.loads((tmp_path / "calib.json").read_text())
    assert len(rows) == 8 * 4 and {len(r) for r in rows} == {32}
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["tool"], r["method"]) for r in results] == [("swp", "wanda"), ("swp", "sparsegpt")]
    for r in results:
        assert r["sparsity"] == pytest.approx(0.5, abs=1e-3) and r["calibration_tokens"] == 8 * 4 * 32
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["peak_rss"] >= r["rss_growth"] >= 0 and r["threads"] == 1
    assert "| wanda | swp |" in text and "| sparsegpt | swp |" in text


def test_peer_side_runs_its_worker_with_the_venvs_python_on_the_same_inputs(tmp_path):
    shared = {"model": "M", "calib": "C.json", "batch_rows": 4}
    peer = bench.worker_command("peer", "wanda", shared, tmp_path / "peer_wanda_0", 1, tmp_path / "venv")
    swp = bench.worker_command("swp", "wanda", shared, tmp_path / "swp_wanda_0", 1, tmp_path / "venv")
    assert peer[:2] == [str(tmp_path / "venv" / "bin" / "python"), str(bench.WORKER)]
    for cmd in (peer, swp):
        assert cmd[cmd.index("--model") + 1] == "M" and cmd[cmd.index("--calib") + 1] == "C.json"
        assert cmd[cmd.index("--threads") + 1] == "1"
    assert bench.venv_commands(tmp_path / "v")[1][-3:] == ["torch==2.13.0", "llmcompressor==0.14.0.1", "gguf==0.19.0"]


def test_table_takes_median_seconds_and_memory_with_its_range():
    rows = [{"method": "wanda", "tool": t, "wall_s": w, "cpu_s": w, "peak_rss": p * 2**20, "rss_growth": 2**20,
             "ppl": 10.0, "sparsity": 0.5} for t, w, p in [("peer", 1.0, 100), ("peer", 3.0, 300), ("peer", 2.0, 200),
                                                            ("swp", 5.0, 50)]]
    text = bench.table(rows)
    assert "| wanda | llm-compressor 0.14.0.1 | 2.0 | 2.0 | 200 (100-300) | 1 (1-1) | 10.00 | 0.5000 | - |" in text
    assert "| wanda | swp | 5.0 | 5.0 | 50 | 1 | 10.00 | 0.5000 | - |" in text


def test_mask_agreement_counts_the_shared_zeros_of_the_decoder_weights(tmp_path):
    from safetensors.torch import save_file

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    w_b = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # three zeros
    w_a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # shares two of them
    head = torch.zeros(2, 2)  # the head and embeddings are not the decoder's: ignored
    save_file({"model.layers.0.q_proj.weight": w_a, "lm_head.weight": head}, str(a / "model.safetensors"))
    save_file({"model.layers.0.q_proj.weight": w_b, "lm_head.weight": head + 1}, str(b / "model.safetensors"))
    assert bench.mask_agreement(str(a), str(b)) == pytest.approx(2 / 3)
    assert bench.mask_agreement(str(b), str(b)) == 1.0
