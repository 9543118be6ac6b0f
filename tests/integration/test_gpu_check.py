"""scripts/gpu_check.sh on a CPU: every train.py command composes and validates, the 2:4 step runs
at toy size, the readers turn results into the table's lines, and "no speed-up" is said."""

from __future__ import annotations

import json

import pytest

from scripts import gpu_check


def test_dry_run_composes_and_validates_every_train_command(tmp_path, capsys):
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gpu_check.md").read_text()
    names = [s.name for s in gpu_check.build_steps("cuda", False, tmp_path, tmp_path / "tasks")]
    assert names == ["paper_lm", "smollm2_swp", "zeroshot_wanda", "sparse_24", "nccl_torchrun"]
    for name in names:
        status = "command" if name == "sparse_24" else "composed"
        assert f"| {name} |" in text and f"| {status} |" in text.split(f"| {name} |")[1].splitlines()[0]
    assert (tmp_path / "tasks" / "swp_word_order.yaml").is_file() and "dry run" in capsys.readouterr().out


def test_a_bad_override_shows_as_invalid_in_one_line(tmp_path):
    step = gpu_check.Step("x", "x", ["python"], gpu_check.read_paper_lm, 1, ["schedule.train_steps=-1"])
    row = gpu_check.compose_step(step, tmp_path)
    assert row["status"] == "invalid" and row["result"].startswith("schedule.train_steps must be")


@pytest.mark.slow
def test_the_sparse_step_runs_at_toy_size_on_a_cpu(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--quick", "--only", "sparse_24", "--out", str(tmp_path)]) == 0
    line = [ln for ln in (tmp_path / "gpu_check.md").read_text().splitlines() if ln.startswith("| sparse_24")][0]
    assert "| ok |" in line and "CUDA part skipped (no CUDA)" in line


def _sparse(tmp_path, speedups: list[float]):
    rows = [{"variant": "dense", "shape": "576x576", "batch": 1, "speedup": 1.0}]
    rows += [{"variant": "2:4 semi-structured", "shape": "576x576", "batch": b, "speedup": s}
             for b, s in zip((1, 2048), speedups)]
    (tmp_path / "bench_sparse.json").write_text(json.dumps({"cpu": [], "cuda": rows, "cuda_skipped": None}))
    return gpu_check.read_sparse(tmp_path)


def test_sparse_reader_says_no_speed_up_when_the_kernel_is_not_faster(tmp_path):
    assert _sparse(tmp_path, [0.6, 1.02]).startswith("no speed-up: 2:4 at best 1.02x of dense (576x576, batch 2048)")
    assert _sparse(tmp_path, [0.6, 1.4]).startswith("2:4 at best 1.40x dense (576x576, batch 2048), worst 0.60x")


def test_run_readers_make_one_line_from_results(tmp_path):
    results = {"dense_val_loss": 2.0, "pruned_val_loss": 2.5, "val_loss": 2.1, "train_tokens_per_s": 1e5,
               "precision": "bf16", "device": "cuda:0", "dense_val_ppl": 20.0, "pruned_val_ppl": 40.0,
               "val_ppl": 25.0, "sparsity": 0.5, "zeroshot/swp_word_order/acc": 0.9, "zeroshot/swp_ties/acc": 0.25,
               "stage_seconds": {"zeroshot_final": 3.0}, "distributed": "ddp", "world_size": 1}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert gpu_check.read_paper_lm(tmp_path) == ("val_loss 2.000 -> pruned 2.500 -> final 2.100; 100000 tok/s "
                                                 "(bf16, cuda:0)")
    assert gpu_check.read_smollm2(tmp_path).startswith("ppl 20.00 -> pruned 40.00 -> final 25.00 at 50.0%")
    assert gpu_check.read_zeroshot(tmp_path).startswith("word order acc 0.900 (chance 0.25); ties acc 0.250")
    assert gpu_check.read_torchrun(tmp_path) == "ddp world size 1 on cuda:0: val_loss 2.100"


def test_a_failing_command_is_reported_with_its_last_line(tmp_path):
    import sys

    step = gpu_check.Step("boom", "x", [sys.executable, "-c", "print('first'); raise SystemExit('error: it broke')"],
                          gpu_check.read_paper_lm, 60)
    row = gpu_check.run_step(step, tmp_path)
    assert row["status"] == "exit 1" and row["result"] == "error: it broke"
