"""The sweep scripts do not trust their input: a job whose results.json is truncated, a list, a
string, not UTF-8, or holds a value of the wrong type in any of its keys (generated over every
key of a real results.json), a damaged error.json or overrides.yaml, or a sweep folder that does
not exist: `scripts/sweep_table.py` and `scripts/plot_sweep.py` print the good jobs and one line
per bad job (or one line), never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from swp.analysis.sweep_summary import collect
from swp.cli import run
from swp.testing.tiny import MICRO, compose_cfg, load_script

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real results.json (a tiny finished run)."""
    folder = tmp_path_factory.mktemp("real") / "run"
    run(compose_cfg(MICRO + ["schedule.finetune_steps=0"], folder))
    return json.loads((folder / "results.json").read_text())


def _sweep(tmp_path, results) -> tuple:
    """Three good jobs (seeds 0-2) and job 3, which each test damages."""
    sweep = tmp_path / "sweep"
    for num, seed in enumerate(SEEDS + (3,)):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (job / "results.json").write_text(json.dumps(results | {"seed": seed}))
    return sweep, sweep / "3"


def _wrong(value):
    """A value of the wrong type for a key: a string for a number, a number for a string."""
    return 12345 if isinstance(value, str) else "n/a"


def _damage(job, how: str, results: dict) -> None:
    path = job / "results.json"
    text = path.read_text()
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "a list":
        path.write_text("[1, 2, 3]")
    elif how == "a string":
        path.write_text('"done"')
    elif how == "empty":
        path.write_text("")
    elif how == "not UTF-8":
        path.write_bytes(text.encode("utf-16"))
    elif how == "error.json truncated":
        path.unlink()
        (job / "error.json").write_text('{"type": "RunErr')
    elif how == "error.json a list":
        path.unlink()
        (job / "error.json").write_text("[]")
    elif how == "overrides.yaml damaged":
        (job / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    else:  # "<key> of the wrong type"
        key = how.split(" ", 1)[0]
        path.write_text(json.dumps(json.loads(text) | {key: _wrong(results[key])}))


FILE_DAMAGE = ["truncated", "a list", "a string", "empty", "not UTF-8", "error.json truncated", "error.json a list",
               "overrides.yaml damaged"]


def _scalar_keys() -> list[str]:
    """Every scalar key a results.json holds (from the tiny run, composed here at collection)."""
    from swp.results import IDENTITY, NUMBERS

    return sorted(set(IDENTITY) | set(NUMBERS) | {"headline_metric", "lower_is_better", "dense_val_loss",
                                                   "pruned_val_loss", "val_loss", "dense_cache"})


KEY_DAMAGE = [f"{k} of the wrong type" for k in _scalar_keys()]


def _check_table(capsys, sweep, how):
    table = load_script("sweep_table")
    code = table.main([str(sweep), "--jobs"])
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "|---" not in ln and "seed |" not in ln]
    seeds_listed = [ln.split("|")[3].strip() for ln in rows if ln.count("|") == 8]
    failed = [ln for ln in out.splitlines() if ln.startswith("failed: ")]
    assert code == 0
    assert {str(s) for s in SEEDS} <= set(seeds_listed), out  # every good job is in the table
    assert len(failed) <= 1 and all(ln.startswith("failed: 3: ") for ln in failed), out
    return failed


@pytest.mark.parametrize("how", FILE_DAMAGE + KEY_DAMAGE)
def test_sweep_table_prints_the_good_jobs_and_one_line_per_bad_one(capsys, tmp_path, results, how):
    sweep, bad = _sweep(tmp_path, results)
    if how.split(" ", 1)[0] in results or how in FILE_DAMAGE:
        _damage(bad, how, results)
    failed = _check_table(capsys, sweep, how)
    rows = {r["job"]: r for r in collect(sweep)}
    if how in FILE_DAMAGE and how != "overrides.yaml damaged":
        assert rows["3"]["status"] == "failed" and len(failed) == 1 and "damaged" in failed[0], failed


@pytest.mark.parametrize("how", FILE_DAMAGE)
def test_plot_sweep_summarizes_the_good_jobs_and_lists_the_bad_one(capsys, tmp_path, results, how):
    sweep, bad = _sweep(tmp_path, results)
    _damage(bad, how, results)
    assert load_script("plot_sweep").main([str(sweep)]) == 0
    out = capsys.readouterr().out
    damaged = how != "overrides.yaml damaged"
    assert out.startswith(f"{3 if damaged else 4}/4 jobs ok")
    assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("failed: ")] == (["failed"] if damaged else [])


@pytest.mark.parametrize("script", ["sweep_table", "plot_sweep"])
def test_a_missing_sweep_folder_is_one_line(capsys, tmp_path, script):
    code = load_script(script).main([str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_a_sweep_whose_every_job_is_damaged_is_one_line(capsys, tmp_path, results):
    sweep, _ = _sweep(tmp_path, results)
    for job in sweep.iterdir():
        (job / "results.json").write_text("[")
    code = load_script("sweep_table").main([str(sweep)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no finished job" in err and "4 failed" in err
    shutil.rmtree(sweep)
