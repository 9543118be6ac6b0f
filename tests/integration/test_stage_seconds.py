"""stage_seconds in results.json: one key per stage that ran, adding up to about the wall time."""

from __future__ import annotations

import json

import pytest

from swp.cli import run

# What every run has; the pruner and schedule decide the rest.
ALWAYS = {"dense_training", "eval_dense", "pruning", "eval_pruned", "eval_final", "export", "checkpoints",
          "energy_meter"}


@pytest.mark.parametrize("overrides, present, absent", [
    ([], {"recovery"}, {"calibration", "eval_initial", "dense_cache", "zeroshot_final"}),
    (["pruner=wanda", "target_sparsity=0.5", "schedule.finetune_steps=0"], {"calibration"}, {"recovery"}),
], ids=["swp_paper", "wanda_one_shot"])
def test_stage_seconds_cover_the_stages_that_ran_and_add_up_to_the_wall_time(tmp_path, tiny_cfg, overrides, present,
                                                                             absent):
    results = run(tiny_cfg(*overrides))
    seconds = json.loads((tmp_path / "run" / "results.json").read_text())["stage_seconds"]
    assert ALWAYS | present <= set(seconds) and not absent & set(seconds), seconds
    assert all(v >= 0.0 for v in seconds.values())
    total, wall = sum(seconds.values()), results["wall_s"]
    # Exclusive stages never count a second twice; what is left out (logging, the sparsity
    # report) is a small share of the wall time.
    assert total <= wall + 1e-6 and total >= 0.9 * wall - 0.2, (total, wall, seconds)


def test_a_dense_cache_hit_is_timed_as_such(tmp_path, tiny_cfg):
    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    run(tiny_cfg("dense_cache.enabled=true", cache, out="first"))
    second = run(tiny_cfg("dense_cache.enabled=true", cache, "prune_rate=0.3", out="second"))
    assert second["dense_cache"] == "hit"
    assert "dense_cache" in second["stage_seconds"] and "dense_training" not in second["stage_seconds"]
