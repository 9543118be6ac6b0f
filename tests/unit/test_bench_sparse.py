"""bench_sparse.py: its CPU part runs anywhere, its CUDA part skips cleanly; 2:4 kernels on GPU."""

import pytest
import torch

from scripts import bench_sparse
from swp.pruning.nm import nm_violations


def test_weights_have_the_sparsity_they_claim():
    ws = bench_sparse.sparse_weights(16, 32)
    assert float((ws["unstructured60"] == 0).float().mean()) == pytest.approx(0.6, abs=0.01)
    assert nm_violations(ws["nm2:4"], 2, 4) == 0 and float((ws["nm2:4"] == 0).float().mean()) == 0.5


def test_cpu_part_runs_and_cuda_part_skips_without_cuda(capsys):
    out = bench_sparse.main(
        ["--cpu-shapes", "64x64", "--cpu-batches", "1,4", "--repeats", "2", "--shapes", "128x128", "--batches", "8"]
    )
    assert len(out["cpu"]) == 2 * 4 and {r["variant"] for r in out["cpu"]} >= {"dense", "2:4 (dense kernel)"}
    assert all(r["speedup"] > 0 for r in out["cpu"])
    if not torch.cuda.is_available():
        assert "skipped: no CUDA" in capsys.readouterr().out and out["cuda"] == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_semi_structured_model_matches_dense_on_gpu():
    from swp.export.semi_structured import semi_structured_linears_
    from swp.pruning.nm import nm_keep_mask

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.GELU(), torch.nn.Linear(256, 128))
    with torch.no_grad():
        for m in (model[0], model[2]):
            m.weight.mul_(nm_keep_mask(m.weight.abs(), 2, 4))
    model = model.half().cuda().eval()
    x = torch.randn(64, 128, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        dense = model(x)
        assert semi_structured_linears_(model) == ["0.weight", "2.weight"]
        sparse = model(x)
    assert torch.allclose(dense, sparse, atol=2e-2, rtol=1e-2)
    rows = bench_sparse.bench_cuda_layers([(256, 256)], [32], repeats=3)
    assert rows[1]["variant"] == "2:4 semi-structured" and rows[1]["max_abs_err"] < 0.1
