"""The bake-off summary on constructed sweep folders: curves against tokens averaged over seeds,
the dense control in every panel, the best one-shot recipe per point and setting, and the
paired differences against it (by hand)."""

import json

import pytest

from swp.analysis.bakeoff import budget_panels, curve_panels, final_table, job_curves, one_shot, table_markdown
from swp.analysis.stats import t95
from swp.analysis.sweep_summary import collect, summarize_sweep


def _curve(dense: float, final: float) -> list[dict]:
    points = ((100, "train", dense + 1), (300, "dense", dense), (300, "pruned", final + 1), (400, "final", final))
    return [{"tokens": t, "stage": s, "val_loss": v} for t, s, v in points]


def _job(sweep, num, recipe, sparsity, seed, final, *, pruner=None, pruning=0, tracking=0, scale=None):
    total = int(1000 * float(scale or 1))
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    overrides = [f"seed={seed}"] + ([f"recipe={recipe}", f"target_sparsity={sparsity}"] if recipe else ["pruner=none"])
    overrides += [f"budget.scale={scale}"] if scale else []
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    results = {"recipe": recipe, "pruner": pruner or recipe or "none", "seed": seed, "target_sparsity": sparsity,
               "sparsity": sparsity or 0.0, "headline_metric": "loss", "lower_is_better": True, "dense_val_loss": 2.0,
               "pruned_val_loss": final + 1, "val_loss": final, "tokens_pruning": pruning, "tracking_points": tracking,
               "tokens_total": total, "curve": _curve(2.0 + seed / 10, final)}
    (folder / "results.json").write_text(json.dumps(results))


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "bakeoff"
    s.mkdir()
    n = iter(range(100))
    for seed, (mag, gpt, gmp, swp) in {1: (3.0, 2.50, 2.40, 2.60), 2: (3.2, 2.60, 2.48, 2.40),
                                      3: (3.1, 2.55, 2.47, 2.50)}.items():
        _job(s, next(n), "magnitude", 0.7, seed, mag)
        _job(s, next(n), "sparsegpt", 0.7, seed, gpt)
        _job(s, next(n), "gmp", 0.7, seed, gmp, pruning=500)
        _job(s, next(n), "swp", 0.7, seed, swp, tracking=100)
        _job(s, next(n), "sparsegpt", 0.9, seed, gpt + 1)
        _job(s, next(n), None, None, seed, 2.0 - seed / 100)  # the sweeper's control
    return s


def test_one_shot_means_no_pruning_phase_and_no_tracking(sweep):
    kinds = {(r["recipe"], one_shot(r)) for r in collect(sweep)}
    assert kinds == {("magnitude", True), ("sparsegpt", True), ("gmp", False), ("swp", False), (None, False)}


def test_paired_differences_against_the_best_one_shot_recipe(sweep):
    table = {(r["point"], r["recipe"]): r for r in final_table(collect(sweep), "loss")}
    assert {k[1] for k in table if k[0] == 0.7} == {"dense", "magnitude", "sparsegpt", "gmp", "swp"}
    assert table[(0.7, "gmp")]["vs"] == "sparsegpt"  # 2.55 beats magnitude's 3.1
    diffs = [-0.10, -0.12, -0.08]  # gmp - sparsegpt, seed by seed
    mean = sum(diffs) / 3
    std = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    gmp = table[(0.7, "gmp")]
    assert gmp["diff"] == pytest.approx(mean) and gmp["n"] == 3
    assert gmp["diff_hi"] == pytest.approx(mean + t95(2) * std / 3 ** 0.5)
    assert gmp["beyond"] and gmp["better"] == "gmp"
    assert table[(0.7, "swp")]["beyond"] is False  # +0.1, -0.2, -0.05: inside the seed spread
    assert table[(0.7, "sparsegpt")]["diff"] == 0.0 and table[(0.7, "sparsegpt")]["one_shot"]
    assert table[(0.9, "sparsegpt")]["vs"] == "sparsegpt"  # the only one-shot recipe at 90%
    assert table[(0.9, "dense")]["mean"] == pytest.approx(1.98)  # the control, placed at every point
    assert "| 70% | gmp | 3 | 2.4500 ± 0.0436 | -0.1000 (vs sparsegpt) |" in table_markdown(
        final_table(collect(sweep), "loss"), "loss")


def test_curves_average_the_seeds_point_by_point(sweep):
    panels = curve_panels(collect(sweep), job_curves(sweep), "loss")
    assert [p["title"] for p in panels] == ["sparsity 70%", "sparsity 90%"]
    lines = {ln["label"]: ln for ln in panels[0]["lines"]}
    assert list(lines) == ["dense", "gmp", "magnitude", "sparsegpt", "swp"]  # the control first
    gmp = lines["gmp"]
    assert gmp["x"] == [100, 300, 300, 400] and gmp["stage"] == ["train", "dense", "pruned", "final"]
    assert gmp["y"][1] == pytest.approx(2.2) and gmp["y"][3] == pytest.approx(2.45)  # dense 2.1/2.2/2.3; final
    assert gmp["lo"][1] == pytest.approx(2.1) and gmp["hi"][1] == pytest.approx(2.3)  # mean ± 1 std
    assert [ln["label"] for ln in panels[1]["lines"]] == ["dense", "sparsegpt"]


def test_a_budget_sweep_compares_within_each_budget(tmp_path):
    s = tmp_path / "budget"
    s.mkdir()
    n = iter(range(100))
    for scale, (gpt, gmp) in {"0.25": (3.0, 3.5), "4": (2.0, 1.5)}.items():
        for seed in (1, 2):
            _job(s, next(n), "sparsegpt", 0.7, seed, gpt + seed / 100, scale=scale)
            _job(s, next(n), "gmp", 0.7, seed, gmp - seed / 50, pruning=500, scale=scale)
    table = {(r["setting"], r["recipe"]): r for r in final_table(collect(s), "loss")}
    assert table[("budget.scale=0.25", "gmp")]["diff"] == pytest.approx(0.5 - 0.045)  # 0.5 - 0.03 x seed, seeds 1, 2
    assert table[("budget.scale=4", "gmp")]["diff"] == pytest.approx(-0.5 - 0.045)
    titles = [p["title"] for p in curve_panels(collect(s), job_curves(s), "loss")]
    assert titles == ["sparsity 70% budget.scale=0.25", "sparsity 70% budget.scale=4"]
    (panel,) = budget_panels(collect(s), "loss")  # final loss against the whole budget's tokens
    lines = {ln["label"]: ln for ln in panel["lines"]}
    assert lines["gmp"]["x"] == [250, 4000] and lines["gmp"]["y"] == pytest.approx([3.47, 1.47])
    assert budget_panels(collect(s)[:2], "loss") == []  # one budget: no such figure
    summarize_sweep(s)
    assert (s / "bakeoff_budget.png").exists()


def test_the_sweep_summary_writes_the_bakeoff_files(sweep):
    out = summarize_sweep(sweep)["bakeoff"]
    assert out["figure"].endswith("bakeoff_curves.png") and (sweep / "bakeoff_curves.png").stat().st_size > 10_000
    data = json.loads((sweep / "bakeoff_curves.json").read_text())
    assert [len(p["lines"]) for p in data["panels"]] == [5, 2]
    assert "| 70% | sparsegpt (one-shot) |" in (sweep / "bakeoff_table.md").read_text()


def test_the_budget_arithmetic_resolvers():
    from swp.resolvers import div, mul, sub

    assert mul(1000, 0.25) == 250 and mul(250, 0.25) == 63 and mul(187.5) == 188  # halves up, not to even
    assert mul(1000, 4, 0.25) == 1000 and sub(1000, 250) == 750
    assert div(750, 100) == 7 and div(5, 100) == 1  # an interval is never 0


def test_the_bakeoff_figure_and_table_go_to_the_sweeps_wandb_run(sweep):
    from tests.unit.test_sweep_summary import logged_sweep

    wb = logged_sweep(sweep)
    assert any(f.startswith("media/images/sweep/bakeoff_curves") for f in wb.files)
    (table,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/bakeoff_table_*.table.json")
    data = json.loads(table.read_text())
    recipes = [row[data["columns"].index("recipe")] for row in data["data"]]
    assert recipes.count("gmp") == 1 and recipes.count("sparsegpt") == 2  # at 70% and 90%
