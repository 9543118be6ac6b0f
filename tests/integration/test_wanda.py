"""Wanda (|W| * ||X_j||, per output row) and activation-aware SWP against hand-computed choices."""

import pytest

from swp.cli import run


def test_pinned_tiny_wanda_run(tiny_cfg):
    r = run(tiny_cfg("pruner=wanda", "target_sparsity=0.5"))
    assert r["dense_val_loss"] == pytest.approx(3.384191, rel=1e-5)  # the same dense phase as SWP's pin
    assert r["pruned_val_loss"] == pytest.approx(3.384668, rel=1e-5)
    assert r["val_loss"] == pytest.approx(3.342166, rel=1e-5)
    assert r["sparsity"] == 0.5 and all(layer["sparsity"] == 0.5 for layer in r["layers"])


def test_pinned_tiny_activation_aware_swp_run(tiny_cfg):
    r = run(tiny_cfg("pruner=swp", "pruner.activation_aware=true", "target_sparsity=0.5"))
    assert r["pruned_val_loss"] == pytest.approx(3.385951, rel=1e-5)
    assert r["val_loss"] == pytest.approx(3.344123, rel=1e-5)
    assert r["sparsity"] == 0.5


@pytest.mark.parametrize("override, message", [
    ("pruner.allocation=shared_rate", "sequential=true needs allocation=uniform"),
    ("pruner.allocation=everywhere", "pruner.allocation must be one of"),
    ("pruner.calibration_batches=0", "pruner.calibration_batches must be an integer >= 1"),
])
def test_bad_wanda_settings_fail_before_training(override, message, tiny_cfg, tmp_path):
    from swp.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        run(tiny_cfg("pruner=wanda", override))
    assert not (tmp_path / "run" / "results.json").exists()
