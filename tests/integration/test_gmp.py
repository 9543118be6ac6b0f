"""Gradual magnitude pruning: the cubic schedule by hand, the pruner's updates, zeroing and
optimizer state, its final masks, and a pinned tiny run."""

import pytest

from swp.cli import run
from swp.errors import ConfigError


def test_needs_a_final_sparsity(tiny_cfg):
    with pytest.raises(ConfigError, match="pruner=gmp needs a final sparsity"):
        run(tiny_cfg("pruner=gmp"))


def test_pinned_tiny_gmp_run(tiny_cfg):
    r = run(tiny_cfg("pruner=gmp", "target_sparsity=0.5"))
    # The dense phase itself is pruned (to 50% by its last step), so its loss differs from SWP's pin.
    assert r["dense_val_loss"] == pytest.approx(3.386610, rel=1e-5)
    assert r["pruned_val_loss"] == r["dense_val_loss"]  # the prune stage keeps the last masks
    assert r["val_loss"] == pytest.approx(3.343367, rel=1e-5)
    assert r["sparsity"] == 0.5 and all(layer["sparsity"] == 0.5 for layer in r["layers"])


def test_gmp_dense_cache_entry_is_its_own(tiny_cfg, tmp_path):
    cache = [f"dense_cache.dir={tmp_path / 'cache'}", "dense_cache.enabled=true"]
    first = run(tiny_cfg("pruner=gmp", "target_sparsity=0.5", *cache, out="a"))
    again = run(tiny_cfg("pruner=gmp", "target_sparsity=0.5", *cache, out="b"))
    assert (first["dense_cache"], again["dense_cache"]) == ("miss", "hit")
    assert again["val_loss"] == first["val_loss"] and again["sparsity"] == 0.5


def test_untracked_pruner_never_takes_gmps_pruned_dense_phase(tiny_cfg, tmp_path):
    cache = [f"dense_cache.dir={tmp_path / 'cache'}", "dense_cache.enabled=true"]
    run(tiny_cfg("pruner=gmp", "target_sparsity=0.5", *cache, out="a"))
    magnitude = run(tiny_cfg("pruner=magnitude", "target_sparsity=0.5", *cache, out="b"))
    assert magnitude["dense_cache"] == "miss"


