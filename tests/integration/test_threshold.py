"""Eq. 2 (per-layer std threshold), masks, target sparsity and the sparsity measure."""


import pytest


def test_pinned_tiny_uniform_magnitude_run(tiny_cfg):
    from swp.cli import run

    r = run(tiny_cfg("pruner=magnitude", "pruner.allocation=uniform", "target_sparsity=0.5"))
    assert r["pruned_val_loss"] == pytest.approx(3.384151, rel=1e-5)
    assert r["val_loss"] == pytest.approx(3.342066, rel=1e-5)
    assert all(layer["sparsity"] == 0.5 and layer["threshold"] is None for layer in r["layers"])
