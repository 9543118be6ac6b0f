"""The zeroshot group without a model: lm-eval's results flattened, the constructors' refusals,
the offline hint, results.json's zero-shot keys and the summary line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from swp.errors import ConfigError
from swp.results import assemble, scalars, summary_line
from swp.testing.zeroshot_tasks import TIES_ACCURACY, ties_items, word_order_items, write_tasks
from swp.zeroshot.harness import flatten
from swp.zeroshot.local import LocalTasks
from swp.zeroshot.none import NoZeroShot
from swp.zeroshot.paper7 import PAPER7, Paper7

RAW = {
    "results": {
        "boolq": {"alias": "boolq", "acc,none": 0.75, "acc_stderr,none": 0.01},
        "arc_easy": {"acc,none": 0.5, "acc_stderr,none": 0.02, "acc_norm,none": 0.25, "acc_norm_stderr,none": 0.03},
    },
    "n-samples": {"boolq": {"original": 3270, "effective": 3270}, "arc_easy": {"original": 2376, "effective": 100}},
}


def test_flatten_keeps_acc_acc_norm_their_stderr_and_samples():
    out = flatten(RAW, ["boolq", "arc_easy"])
    assert out == {
        "boolq/acc": 0.75, "boolq/acc_stderr": 0.01, "boolq/samples": 3270,
        "arc_easy/acc": 0.5, "arc_easy/acc_stderr": 0.02, "arc_easy/acc_norm": 0.25, "arc_easy/acc_norm_stderr": 0.03,
        "arc_easy/samples": 100,
        # the unweighted mean over the tasks; acc_norm is not every task's, so it has no mean
        "mean/acc": 0.625,
    }


def test_flatten_means_acc_norm_when_every_task_has_it():
    raw = {"results": {"a": {"acc,none": 0.2, "acc_norm,none": 0.4}, "b": {"acc,none": 0.6, "acc_norm,none": 0.8}}}
    out = flatten(raw, ["a", "b"])
    assert out["mean/acc"] == pytest.approx(0.4) and out["mean/acc_norm"] == pytest.approx(0.6)


def test_flatten_skips_a_mean_over_a_missing_task():
    assert "mean/acc" not in flatten(RAW, ["boolq", "winogrande"])


def test_ties_task_has_the_known_accuracy_and_word_order_rotates_answers():
    items = ties_items()
    assert all(len(set(i["choices"])) == 1 for i in items)
    assert sum(i["answer"] == 0 for i in items) / len(items) == TIES_ACCURACY
    shuffled = word_order_items()
    assert [i["answer"] for i in shuffled[:4]] == [0, 1, 2, 3]
    for item in shuffled:  # four different orders of the same words
        assert len(set(item["choices"])) == 4 and len({tuple(sorted(c.split())) for c in item["choices"]}) == 1


def test_write_tasks_writes_yaml_with_absolute_json_paths(tmp_path):
    names = write_tasks(tmp_path / "tasks")
    assert names == ["swp_ties", "swp_word_order"]
    for name in names:
        yaml = (tmp_path / "tasks" / f"{name}.yaml").read_text()
        assert "dataset_path: json" in yaml and str((tmp_path / "tasks" / f"{name}.jsonl").resolve()) in yaml


@pytest.mark.parametrize("kwargs, key", [
    (dict(tasks=[]), "zeroshot.tasks"),
    (dict(tasks=[""]), "zeroshot.tasks"),
    (dict(tasks=["t"], batch_size=0), "zeroshot.batch_size"),
    (dict(tasks=["t"], batch_size="big"), "zeroshot.batch_size"),
    (dict(tasks=["t"], batch_size=True), "zeroshot.batch_size"),
    (dict(tasks=["t"], limit=0), "zeroshot.limit"),
    (dict(tasks=["t"], num_fewshot=-1), "zeroshot.num_fewshot"),
    (dict(tasks=["t"], include_path="/no/such/folder"), "zeroshot.include_path"),
], ids=lambda v: str(v))
def test_local_constructor_refuses_in_one_line(tmp_path, kwargs, key):
    kwargs = {"include_path": str(tmp_path)} | kwargs
    with pytest.raises(ConfigError) as info:
        LocalTasks(**kwargs)
    assert str(info.value).startswith(key) and "\n" not in str(info.value)


def test_paper7_is_the_seven_tasks_and_refuses_others():
    assert Paper7().tasks == PAPER7 == ("boolq", "rte", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                        "openbookqa")
    assert Paper7(tasks=["rte"]).tasks == ("rte",)
    with pytest.raises(ConfigError, match=r"^zeroshot.tasks\[1\] must be one of boolq, .*; got 'mmlu'"):
        Paper7(tasks=["rte", "mmlu"])


@pytest.mark.parametrize("flags, says", [
    ({}, "Hub: is it reachable"),
    ({"HF_DATASETS_OFFLINE": "1"}, "HF_DATASETS_OFFLINE set"),
    ({"HF_HUB_OFFLINE": "true", "HF_DATASETS_OFFLINE": "0"}, "HF_HUB_OFFLINE set"),
])
def test_paper7_offline_hint_names_the_flags(monkeypatch, flags, says):
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    for flag, value in flags.items():
        monkeypatch.setenv(flag, value)
    assert says in Paper7().offline_hint()


@pytest.mark.parametrize("option", [NoZeroShot(), LocalTasks(["t"], include_path=".")], ids=["none", "local"])
def test_no_tokenizer_or_several_processes_refused_before_any_data_is_loaded(option):
    if not option.tasks:  # zeroshot=none accepts every run
        option.prepare(None, world_size=4)
        return
    with pytest.raises(ConfigError, match="^zeroshot: zeroshot=local scores a Hugging Face causal LM"):
        option.prepare(None, world_size=1)
    with pytest.raises(ConfigError, match="^zeroshot: zeroshot=local runs in one process"):
        option.prepare(object(), world_size=2)


def test_a_model_without_the_hugging_face_interface_is_refused():
    from torch import nn

    with pytest.raises(ConfigError, match="^zeroshot: zeroshot=local needs a Hugging Face model .* got Linear"):
        LocalTasks(["t"], include_path=".").check_model(nn.Linear(2, 2))


def _figures(**extra) -> dict:
    return {"prune_rate_used": 0.6, "initial": {}, "dense": {"ppl": 9.0}, "pruned": {"ppl": 12.0},
            "final": {"ppl": 10.0}, "sparsity": {"sparsity": 0.5, "sparsity_overall": 0.4},
            "train_tokens_per_s": 100.0, "finetune_tokens_per_s": 90.0, "tracking_points": 4,
            "tracked_state_bytes": 0, "model_bytes": 0, "dense_cache": "off", "resumed_from": None, "wall_s": 3.0,
            "calibration_batches": 0, "calibration_seed": None, "calibration_tokens": 0, "tokens_dense": 100,
            "tokens_pruning": 0, "tokens_recovery": 20, "tokens_total": 120, "curve": []} | extra


IDENTITY = dict(pruner="wanda", model="smollm2", dataset="wikitext2", schedule="one_shot", recovery="plain",
                recipe=None,
                prune_rate=0.6,
                target_sparsity=0.5, seed=1, device="cpu", precision="fp32", nm=None, allocation="uniform")


def test_results_carry_zeroshot_and_stage_seconds_flat_for_wandb_and_csv():
    figures = _figures(zeroshot={"boolq/acc": 0.7, "mean/acc": 0.7}, pruned_zeroshot={"mean/acc": 0.6},
                       stage_seconds={"pruning": 1.5, "eval_final": 0.5})
    r = assemble(IDENTITY, figures, headline_metric="ppl", lower_is_better=True)
    assert r["zeroshot/boolq/acc"] == 0.7 and r["pruned_zeroshot/mean/acc"] == 0.6
    assert r["stage_seconds"] == {"pruning": 1.5, "eval_final": 0.5}
    flat = scalars(r)
    assert flat["stage_seconds/pruning"] == 1.5 and "stage_seconds" not in flat and "zeroshot/mean/acc" in flat
    line = summary_line(r, Path("out"))
    assert "zero-shot mean acc: pruned 0.6000 -> final 0.7000" in line
    assert "\nseconds: pruning 1.5, eval_final 0.5\nrun folder: out" in line


def test_results_without_zeroshot_say_nothing_about_it():
    r = assemble(IDENTITY, _figures(), headline_metric="ppl", lower_is_better=True)
    assert not any("zeroshot" in k for k in r) and r["stage_seconds"] == {}
    assert "zero-shot" not in summary_line(r, Path("out")) and "seconds:" not in summary_line(r, Path("out"))
    assert math.isfinite(r["wall_s"])
