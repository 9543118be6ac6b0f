"""The bake-off: every recipe spends the budget (tokens by phase add up to it, through the real
run), its curve is evaluated at the budget's fixed token counts, and a tiny bake-off sweep is
summarized into the curves against tokens and the table against the best one-shot recipe."""

from __future__ import annotations

import pytest

from swp.cli import run
from swp.config import CONF_DIR
from swp.testing.tiny import TINY, compose_cfg

RECIPES = sorted(p.stem for p in (CONF_DIR / "recipe").glob("*.yaml"))
# The tiny model and data, without TINY's schedule lengths (the recipes derive theirs from the budget).
TINY_PARTS = [o for o in TINY if not o.startswith("schedule.")]
BUDGET = ["budget.steps=24", "budget.tracking_points=4", "budget.mask_updates=3", "budget.eval_points=4"]
TPS = 8 * 32  # tiny tokens per step


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_spends_the_budget(recipe, tmp_path):
    r = run(compose_cfg(TINY_PARTS + BUDGET + [f"recipe={recipe}", "target_sparsity=0.5"], tmp_path / "run"))
    assert r["recipe"] == recipe
    phases = (r["tokens_dense"], r["tokens_pruning"], r["tokens_recovery"])
    assert sum(phases) == r["tokens_total"] == 24 * TPS  # calibration tokens are beside it
    if r["pruner"] == "none":
        assert phases == (24 * TPS, 0, 0) and r["sparsity"] == 0
    else:  # 18 steps before the final masks, 6 of recovery (budget.recovery 0.25) after them
        assert r["tokens_recovery"] == 6 * TPS and r["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert r["tokens_pruning"] in (0, (18 - 5) * TPS)  # one-shot, or the ramp from 0.25 x 18 (rounded 5)
    inside = [p["tokens"] for p in r["curve"] if p["stage"] in ("train", "finetune")]
    assert inside == [6 * TPS, 12 * TPS]  # every 24/4 steps, but not at a phase's end (18, 24): its stage's
    assert r["curve"][-1]["tokens"] == 24 * TPS and r["curve"][-1]["val_loss"] == r["val_loss"]


@pytest.mark.slow
def test_a_tiny_bakeoff_sweep_draws_the_curves_and_the_table(monkeypatch, tmp_path):
    """experiment=bakeoff_char on the tiny model: two recipes x two seeds plus the control the
    sweeper adds once per seed; the sweep folder gets the curves and the table."""
    import json
    import sys

    from swp import cli as swp_cli

    sweep = tmp_path / "sweep"
    monkeypatch.setattr(sys, "argv", [
        "train.py", f"--config-path={CONF_DIR}", "experiment=bakeoff_char", "hydra/launcher=basic", *TINY_PARTS,
        *BUDGET, f"hydra.sweep.dir={sweep}", f"dense_cache.dir={tmp_path / 'cache'}",
        "dense_cache.enabled=true", "recipe=sparsegpt,swp_regrow", "target_sparsity=0.5", "seed=1,2",
    ])
    swp_cli.hydra_app()()  # every job finished: no exit
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 6 and sum("None" in j for j in jobs) == 2  # the control: no recipe, once per seed
    table = (sweep / "bakeoff_table.md").read_text()
    for recipe in ("dense", "sparsegpt (one-shot)", "swp_regrow"):
        assert f"| 50% | {recipe} | 2 |" in table
    panels = json.loads((sweep / "bakeoff_curves.json").read_text())["panels"]
    assert [ln["label"] for ln in panels[0]["lines"]] == ["dense", "sparsegpt", "swp_regrow"]
    assert all(ln["x"][-1] == 24 * TPS and ln["n"][-1] == 2 for ln in panels[0]["lines"])
    assert (sweep / "bakeoff_curves.png").stat().st_size > 10_000
