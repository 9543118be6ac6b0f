"""SparseGPT: the Hessian, the OBS reconstruction against its closed form, the error against
magnitude pruning, exact counts, N:M, the sequential block order and a pinned tiny run."""

import pytest

from swp.cli import run


def test_pinned_tiny_sparsegpt_run(tiny_cfg):
    r = run(tiny_cfg("pruner=sparsegpt", "target_sparsity=0.5"))
    assert r["dense_val_loss"] == pytest.approx(3.384191, rel=1e-5)
    assert r["pruned_val_loss"] == pytest.approx(3.384303, rel=1e-5)
    assert r["val_loss"] == pytest.approx(3.343942, rel=1e-5)
    assert r["sparsity"] == 0.5 and all(layer["sparsity"] == 0.5 for layer in r["layers"])


