"""Sweep summaries: per-job CSV, the per-point aggregate over seeds, Fig. 3/4 with bands and the
two reference lines, the headline metric per task, the W&B summary run, the paired comparison
of scripts/sweep_table.py, and a real `-m` sweep with seeds and the automatic control."""

import csv
import json
import math

import pytest

from swp.analysis.sweep_summary import (
    CONTROL_LABEL,
    DENSE_LABEL,
    aggregate,
    collect,
    figure_lines,
    headline_metric,
    summarize_sweep,
)
from swp.logging.wandb_logger import WandbLogger
from swp.logging.wandb_records import find_run_files, read_run
from swp.testing.tiny import load_script


def _job(sweep, num, results=None, error=None, overrides=("x=1",), finetune_steps=None):
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results | {"layers": [{"name": "w"}]}))
    if error is not None:
        (folder / "error.json").write_text(json.dumps(error))
    if finetune_steps is not None:
        (folder / "config.yaml").write_text(f"schedule:\n  finetune_steps: {finetune_steps}\n")


def _result(pruner, sparsity, loss, dense=2.0, metric="loss", **extra):
    return {"pruner": pruner, "prune_rate": sparsity * 2, "sparsity": sparsity, f"dense_val_{metric}": dense,
            f"pruned_val_{metric}": loss + 1, f"val_{metric}": loss} | extra


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _lines(sweep, name="fig3_compression_loss.json"):
    return json.loads((sweep / name).read_text())["lines"]


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "multirun" / "s1"
    s.mkdir(parents=True)
    (s / "multirun.yaml").write_text("{}")
    _job(s, 0, _result("swp", 0.6, 1.9))
    _job(s, 1, _result("magnitude", 0.6, 2.1))
    _job(s, 2, _result("swp", 0.2, 1.95), overrides=("pruner=swp", "prune_rate=0.4"))
    _job(s, 3, error={"type": "NonFiniteLossError", "error": "train: loss is nan at step 3"})
    _job(s, 10)  # killed: neither file
    _job(s, 4, _result("magnitude", 0.2, 1.99))
    return s


# Three seeds x {swp, magnitude} x two target sparsities, and the control once per seed: the
# values are chosen so that means and sample stds are easy to check by hand.
SEEDS = (1, 2, 3)
DENSE = {1: 2.00, 2: 2.10, 3: 2.20}
FINAL = {("swp", 0.5): (1.90, 2.00, 2.30), ("magnitude", 0.5): (1.95, 2.05, 2.15),
         ("swp", 0.9): (2.50, 2.60, 2.70), ("magnitude", 0.9): (2.80, 2.95, 3.05)}
CONTROL = (1.80, 1.85, 1.90)


def _seeded_sweep(path, finetune_steps=50, metric="loss", headline=True):
    path.mkdir(parents=True, exist_ok=True)
    num = 0
    extra = {"headline_metric": metric, "lower_is_better": True} if headline else {}
    for (pruner, target), values in FINAL.items():
        for seed, v in zip(SEEDS, values):
            final = v if finetune_steps else v + 1
            _job(path, num, _result(pruner, target, final, dense=DENSE[seed], metric=metric, seed=seed,
                                    target_sparsity=target, **extra),
                 overrides=(f"pruner={pruner}", f"target_sparsity={target}", f"seed={seed}"),
                 finetune_steps=finetune_steps)
            num += 1
    if finetune_steps:
        for seed, v in zip(SEEDS, CONTROL):
            r = _result("none", 0.0, v, dense=DENSE[seed], metric=metric, seed=seed, target_sparsity=None, **extra)
            r[f"pruned_val_{metric}"] = DENSE[seed]
            _job(path, num, r, overrides=(f"seed={seed}", "pruner=none"), finetune_steps=finetune_steps)
            num += 1
    return path


def _std(values):
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def test_summary_csv_matches_jobs_and_lists_failures(sweep):
    result = summarize_sweep(sweep)
    assert (result["jobs"], result["ok"], result["failed"]) == (6, 4, 2)
    rows = _read_csv(sweep / "sweep_results.csv")
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "10"]  # numeric job order
    for r in rows:
        if r["status"] == "ok":
            saved = json.loads((sweep / r["job"] / "results.json").read_text())
            assert {k: str(v) for k, v in saved.items() if k != "layers"} == {k: r[k] for k in saved if k != "layers"}
    assert rows[2]["overrides"] == "pruner=swp prune_rate=0.4" and "layers" not in rows[0]
    assert (rows[3]["status"], rows[3]["error_type"]) == ("failed", "NonFiniteLossError")
    assert rows[5]["status"] == "failed" and "no results.json" in rows[5]["error"]
    assert (sweep / "fig3_compression_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert not (sweep / "fig4_compression_mae.png").exists()


def test_curves_are_per_pruner_and_sorted_by_sparsity(sweep):
    rows = collect(sweep)
    lines = figure_lines(aggregate(rows, "loss"), rows, "loss")
    curves = {ln["label"]: (ln["x"], ln["y"]) for ln in lines if ln["kind"] == "curve"}
    assert curves == {"swp": ([20.0, 60.0], [1.95, 1.9]), "magnitude": ([20.0, 60.0], [1.99, 2.1])}


def test_aggregate_has_mean_std_n_per_point_and_the_control_row(tmp_path):
    sweep = _seeded_sweep(tmp_path / "s")
    result = summarize_sweep(sweep)
    assert result["aggregate"].endswith("sweep_aggregate.csv") and result["metric"] == "loss"
    rows = {(r["curve"], r["point"]): r for r in _read_csv(sweep / "sweep_aggregate.csv")}
    assert set(rows) == {("swp", "0.5"), ("swp", "0.9"), ("magnitude", "0.5"), ("magnitude", "0.9"), ("none", "")}
    for (pruner, target), values in FINAL.items():
        r = rows[(pruner, str(target))]
        assert int(r["n"]) == 3 and r["seeds"] == "1 2 3" and r["point_of"] == "target_sparsity"
        assert float(r["val_loss_mean"]) == pytest.approx(sum(values) / 3)
        assert float(r["val_loss_std"]) == pytest.approx(_std(values))
        assert (float(r["val_loss_min"]), float(r["val_loss_max"])) == (min(values), max(values))
        assert float(r["sparsity_mean"]) == pytest.approx(target) and float(r["sparsity_std"]) == 0.0
        assert float(r["dense_val_loss_mean"]) == pytest.approx(2.1)
    control = rows[("none", "")]
    assert int(control["n"]) == 3 and float(control["val_loss_mean"]) == pytest.approx(1.85)
    assert float(control["val_loss_std"]) == pytest.approx(0.05)


def test_figure_draws_bands_and_both_reference_lines(tmp_path):
    sweep = _seeded_sweep(tmp_path / "s")
    result = summarize_sweep(sweep)
    assert result["figure"].endswith("fig3_compression_loss.png") and (sweep / "fig3_compression_loss.png").exists()
    data = json.loads((sweep / "fig3_compression_loss.json").read_text())
    assert data["band"] == "std" and "std" in data["band_note"] and data["log_y"] is False
    kinds = [ln["kind"] for ln in data["lines"]]
    # one mean curve per pruner, its before-fine-tune curve, the dense line and the control line
    assert sorted(kinds) == sorted(["curve", "curve", "before_finetune", "before_finetune", "dense", "control"])
    by_label = {ln["label"]: ln for ln in data["lines"]}
    swp = by_label["swp"]
    assert swp["x"] == [50.0, 90.0] and swp["n"] == [3, 3]
    mean, std = sum(FINAL[("swp", 0.9)]) / 3, _std(FINAL[("swp", 0.9)])
    assert swp["y"][1] == pytest.approx(mean)
    assert (swp["lo"][1], swp["hi"][1]) == (pytest.approx(mean - std), pytest.approx(mean + std))
    assert by_label[DENSE_LABEL]["y"] == pytest.approx(2.1) and by_label[DENSE_LABEL]["n"] == 3
    assert by_label[CONTROL_LABEL]["y"] == pytest.approx(1.85)
    summarize_sweep(sweep, band="minmax")
    swp = {ln["label"]: ln for ln in _lines(sweep)}["swp"]
    assert (swp["lo"][1], swp["hi"][1]) == (2.5, 2.7)


def test_a_sweep_without_fine_tune_draws_the_dense_line_only(tmp_path):
    sweep = _seeded_sweep(tmp_path / "s", finetune_steps=0)
    summarize_sweep(sweep)
    kinds = sorted(ln["kind"] for ln in _lines(sweep))
    assert kinds == ["curve", "curve", "dense"]


@pytest.mark.parametrize("metric, figure, log_y", [
    ("loss", "fig3_compression_loss", False), ("ppl", "fig3_compression_ppl", True),
    ("mae", "fig4_compression_mae", False)])
def test_the_headline_metric_comes_from_results_json(tmp_path, metric, figure, log_y):
    sweep = _seeded_sweep(tmp_path / "s", metric=metric)
    for folder in sweep.iterdir():  # every task also reports a loss: the declared key must win
        r = json.loads((folder / "results.json").read_text())
        others = {f"{stage}val_{m}": 9.0 for stage in ("", "dense_", "pruned_") for m in ("loss", "mae")}
        own = {k: v for k, v in r.items() if k.endswith(f"val_{metric}")}
        (folder / "results.json").write_text(json.dumps(r | others | own))
    result = summarize_sweep(sweep)
    assert result["metric"] == metric and result["figure"].endswith(figure + ".png")
    data = json.loads((sweep / f"{figure}.json").read_text())
    assert data["metric"] == metric and data["log_y"] is log_y
    assert data["ylabel"] == {"loss": "validation loss (nats/char)", "ppl": "validation perplexity",
                              "mae": "validation MAE ($)"}[metric]
    assert {ln["label"]: ln for ln in data["lines"]}[CONTROL_LABEL]["y"] == pytest.approx(1.85)
    assert summarize_sweep(sweep, log_y=False) and json.loads((sweep / f"{figure}.json").read_text())["log_y"] is False


def test_without_the_headline_key_the_metric_is_guessed_as_before(tmp_path):
    sweep = _seeded_sweep(tmp_path / "s", metric="mae", headline=False)
    assert headline_metric(collect(sweep)) == "mae"


def test_each_task_declares_its_headline_metric():
    from swp.tasks.char_lm import CharLMTask
    from swp.tasks.price import PriceTask
    from swp.tasks.token_lm import TokenLMTask

    assert [t.metrics[0] for t in (CharLMTask, TokenLMTask, PriceTask)] == ["loss", "ppl", "mae"]
    assert all(t.lower_is_better for t in (CharLMTask, TokenLMTask, PriceTask))


def test_variants_of_one_pruner_are_separate_curves(tmp_path):
    sweep = tmp_path / "s"
    jobs = [("magnitude", 1, 2.0), ("magnitude", 2, 2.2), ("signed", 1, 2.4), ("signed", 2, 2.6)]
    for num, (avg, seed, loss) in enumerate(jobs):
        _job(sweep, num, _result("swp", 0.5, loss, seed=seed, target_sparsity=0.5),
             overrides=("pruner=swp", f"pruner.average_of={avg}", f"seed={seed}", "target_sparsity=0.5"))
    _job(sweep, 4, _result("none", 0.0, 1.5, seed=1), overrides=("seed=1", "pruner=none"))
    aggs = {a["curve"]: a for a in aggregate(collect(sweep), "loss")}
    assert set(aggs) == {"swp average_of=magnitude", "swp average_of=signed", "none"}
    signed = aggs["swp average_of=signed"]
    assert signed["val_loss_mean"] == pytest.approx(2.5) and signed["n"] == 2


def test_sweep_table_compares_two_pruners_paired_by_seed(tmp_path, capsys):
    sweep = _seeded_sweep(tmp_path / "s")
    sweep_table = load_script("sweep_table")
    diffs = {d["point"]: d for d in sweep_table.paired_differences(collect(sweep), "swp", "magnitude", "loss")}
    d = [a - b for a, b in zip(FINAL[("swp", 0.9)], FINAL[("magnitude", 0.9)])]  # -0.30, -0.35, -0.35
    assert diffs[0.9]["n"] == 3 and diffs[0.9]["mean"] == pytest.approx(-1 / 3)
    assert diffs[0.9]["std"] == pytest.approx(_std(d))
    half = 4.303 * _std(d) / math.sqrt(3)  # t(2 dof, 97.5%) = 4.303: the interval [-0.405, -0.262] excludes 0
    assert diffs[0.9]["lo"] == pytest.approx(-1 / 3 - half) and diffs[0.9]["hi"] == pytest.approx(-1 / 3 + half)
    assert diffs[0.9]["beyond"] is True
    assert diffs[0.5]["mean"] == pytest.approx((-0.05 - 0.05 + 0.15) / 3) and diffs[0.5]["beyond"] is False
    vs_control = sweep_table.paired_differences(collect(sweep), "swp", "none", "loss")
    assert [v["mean"] for v in vs_control] == [pytest.approx(sum(FINAL[("swp", 0.5)]) / 3 - 1.85),
                                                pytest.approx(sum(FINAL[("swp", 0.9)]) / 3 - 1.85)]
    assert sweep_table.main([str(sweep), "--compare", "swp", "magnitude", "--figure", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    assert "swp - magnitude" in out and "| 0.9 | 3 | -0.3333 |" in out and "| none | control | 3 |" in out
    assert len(json.loads((tmp_path / "f.json").read_text())["lines"]) == 6


def test_price_sweep_gets_the_mae_figure(tmp_path):
    _job(tmp_path, 0, _result("swp", 0.3, 120.0, dense=100.0, metric="mae") | {"val_loss": 0.5})
    _job(tmp_path, 1, _result("swp", 0.5, 180.0, dense=100.0, metric="mae") | {"val_loss": 0.6})
    assert summarize_sweep(tmp_path)["figure"].endswith("fig4_compression_mae.png")
    assert (tmp_path / "fig4_compression_mae.png").exists() and not (tmp_path / "fig3_compression_loss.png").exists()


def logged_sweep(sweep):
    """The sweep summarized into an offline W&B run, read back."""
    logger = WandbLogger(config={"sweep_dir": str(sweep)}, out_dir=str(sweep), project="swp-test",
                         job_type="sweep_summary")
    summarize_sweep(sweep, logger)
    logger.finish(True)
    (path,) = find_run_files(sweep)
    return read_run(path, wait_s=30)


def test_sweep_run_logs_table_and_curves_to_wandb(sweep):
    wb = logged_sweep(sweep)
    assert wb.group == "multirun/s1" and wb.summary["failed"] == 2 and wb.summary["ok"] == 4
    (table_path,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/results_*.table.json")
    table = json.loads(table_path.read_text())
    rows = _read_csv(sweep / "sweep_results.csv")
    assert table["columns"] == list(rows[0])
    assert [[("" if v is None else str(v)) for v in r] for r in table["data"]] == [list(r.values()) for r in rows]
    (agg_path,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/aggregate_*.table.json")
    assert len(json.loads(agg_path.read_text())["data"]) == len(_read_csv(sweep / "sweep_aggregate.csv")) == 4
    (curve_path,) = sweep.glob("wandb/offline-run-*/files/media/table/sweep/compression_loss/final_table_*.table.json")
    points = {(r[1], r[0], r[2]) for r in json.loads(curve_path.read_text())["data"]}
    assert points == {("swp", 20.0, 1.95), ("swp", 60.0, 1.9), ("magnitude", 20.0, 1.99), ("magnitude", 60.0, 2.1)}
    assert list(sweep.glob("wandb/offline-run-*/files/media/table/sweep/compression_loss/band_table_*.table.json"))
    tables = "wandb/offline-run-*/files/media/table/sweep/compression_loss"
    (ref_path,) = sweep.glob(f"{tables}/reference_table_*.table.json")
    assert {r[1] for r in json.loads(ref_path.read_text())["data"]} == {DENSE_LABEL}  # no control in this sweep
    assert wb.summary["reference/dense_val_loss"] == pytest.approx(2.0)
    assert any(f.startswith("media/images/sweep/fig3_compression_loss") for f in wb.files)


def test_plot_sweep_script_rebuilds_from_disk(sweep, capsys):
    plot_sweep = load_script("plot_sweep")
    assert plot_sweep.main([str(sweep)]) == 0
    assert "4/6 jobs ok" in capsys.readouterr().out
    assert len(_read_csv(sweep / "sweep_results.csv")) == 6 and (sweep / "fig3_compression_loss.png").exists()
    assert plot_sweep.main([str(sweep / "0")]) == 2  # a job folder is not a sweep folder




def test_zero_shot_accuracy_gets_columns_and_its_own_figure_against_compression(tmp_path):
    """Jobs scored with zeroshot=local|paper7: their keys are CSV columns, the mean accuracy is
    aggregated over seeds and drawn against sparsity, the control as a line; stage seconds are
    one column per stage."""
    for i, (pruner, sparsity, seed, acc) in enumerate([("wanda", 0.5, 1, 0.60), ("wanda", 0.5, 2, 0.64),
                                                       ("wanda", 0.7, 1, 0.40), ("none", 0.0, 1, 0.70)]):
        extra = {"zeroshot/mean/acc": acc, "pruned_zeroshot/mean/acc": acc - 0.1, "zeroshot/boolq/acc": acc,
                 "stage_seconds": {"pruning": 2.0, "eval_final": 1.0}, "seed": seed,
                 "target_sparsity": sparsity if pruner != "none" else None}
        _job(tmp_path, i, _result(pruner, sparsity, 2.0 + sparsity, **extra), overrides=(f"seed={seed}",),
             finetune_steps=10)
    summary = summarize_sweep(tmp_path)
    row = _read_csv(tmp_path / "sweep_results.csv")[0]
    assert row["zeroshot/boolq/acc"] == "0.6" and row["stage_seconds/pruning"] == "2.0"
    agg = {(a["pruner"], a["point"]): a for a in _read_csv(tmp_path / "sweep_aggregate.csv")}
    assert float(agg[("wanda", "0.5")]["zeroshot_mean_acc_mean"]) == pytest.approx(0.62)
    assert summary["zeroshot_figure"] == str(tmp_path / "fig_zeroshot_compression.png")
    lines = {ln["kind"]: ln for ln in _lines(tmp_path, "fig_zeroshot_compression.json")}
    assert lines["curve"]["y"] == pytest.approx([0.62, 0.40]) and lines["curve"]["x"] == pytest.approx([50.0, 70.0])
    assert lines["before_finetune"]["y"] == pytest.approx([0.52, 0.30])
    assert lines["control"]["y"] == pytest.approx(0.70) and "dense" not in lines  # the dense model is not scored


def test_no_zero_shot_figure_without_scored_jobs(sweep):
    assert summarize_sweep(sweep)["zeroshot_figure"] is None
    assert not (sweep / "fig_zeroshot_compression.png").exists()
