"""The real run(cfg) on tiny composed configs: pinned numbers, artifacts, schedules, all options."""

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from swp.cli import run
from swp.testing.tiny import CONF


def test_pinned_tiny_swp_run(tiny_cfg, tmp_path):
    r = run(tiny_cfg("pruner=swp", "prune_rate=0.6"))
    # Deterministic on CPU with one thread: a change in any phase moves these numbers.
    assert r["dense_val_loss"] == pytest.approx(3.384191, rel=1e-5)
    assert r["pruned_val_loss"] == pytest.approx(3.384554, rel=1e-5)
    assert r["val_loss"] == pytest.approx(3.343161, rel=1e-5)
    assert r["sparsity"] == pytest.approx(0.270020, abs=1e-6)
    assert r["tracking_points"] == 12  # 60 steps / 5
    assert r["sparsity_overall"] < r["sparsity"]  # embeddings and norms stay dense


def test_run_folder_holds_every_artifact(tiny_cfg, tmp_path):
    r = run(tiny_cfg("pruner=swp"))
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    for key in ("pruner", "prune_rate", "target_sparsity", "sparsity", "sparsity_overall", "dense_val_loss",
                "pruned_val_loss", "val_loss", "layers", "train_tokens_per_s", "wall_s", "seed"):
        assert key in saved, key
    assert saved["val_loss"] == r["val_loss"]
    masks = load_file(out / "masks.safetensors")
    weights = load_file(out / "model.safetensors")
    importance = load_file(out / "importance.safetensors")
    assert set(masks) == set(importance) == {layer["name"] for layer in saved["layers"]}
    for name, keep in masks.items():
        assert keep.dtype == torch.bool and keep.shape == weights[name].shape
        assert torch.all(weights[name][~keep] == 0), name  # still zero after fine-tuning
        layer = next(x for x in saved["layers"] if x["name"] == name)
        assert layer["sparsity"] == pytest.approx(float((weights[name] == 0).float().mean()))
    assert (out / "config.yaml").exists() and (out / "metrics.jsonl").exists()


def test_magnitude_and_random_prune_equal_counts(tiny_cfg):
    mag = run(tiny_cfg("pruner=magnitude", out="m"))
    rnd = run(tiny_cfg("pruner=random", out="r"))
    assert [x["sparsity"] for x in mag["layers"]] == [x["sparsity"] for x in rnd["layers"]]
    assert mag["pruned_val_loss"] != rnd["pruned_val_loss"]


def test_none_pruner_stays_dense(tiny_cfg, tmp_path):
    r = run(tiny_cfg("pruner=none"))
    assert r["sparsity"] == 0.0 and not (tmp_path / "run" / "masks.safetensors").exists()


def test_target_sparsity_overrides_prune_rate(tiny_cfg):
    r = run(tiny_cfg("target_sparsity=0.5"))
    assert abs(r["sparsity"] * r["prunable_params"] - 0.5 * r["prunable_params"]) <= len(r["layers"])
    assert r["prune_rate_used"] != r["prune_rate"]


def test_one_shot_is_paper_without_fine_tuning(tiny_cfg):
    from swp.testing.tiny import compose_cfg

    paper = compose_cfg(["schedule=paper"], Path("/unused")).schedule
    one_shot = compose_cfg(["schedule=one_shot"], Path("/unused")).schedule
    assert one_shot.finetune_steps == 0 and paper.finetune_steps > 0
    assert {k: v for k, v in one_shot.items() if k != "finetune_steps"} == {
        k: v for k, v in paper.items() if k != "finetune_steps"}
    r = run(tiny_cfg("schedule=one_shot", "schedule.finetune_steps=0"))  # TINY sets it; reset
    assert r["val_loss"] == r["pruned_val_loss"] and r["finetune_tokens_per_s"] == 0.0


def test_same_seed_same_numbers_other_seed_differs(tiny_cfg):
    a = run(tiny_cfg(out="a"))
    b = run(tiny_cfg(out="b"))
    c = run(tiny_cfg("seed=7", out="c"))
    assert a["val_loss"] == b["val_loss"] and a["val_loss"] != c["val_loss"]


def test_bf16_precision_runs(tiny_cfg):
    r = run(tiny_cfg("precision=bf16", "schedule.train_steps=10", "schedule.finetune_steps=2"))
    assert r["precision"] == "bf16" and r["val_loss"] < 5.0


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _groups() -> list[str]:
    # experiment and recipe options set other groups' keys (@package _global_): no target of their own.
    return sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra", "recipe"))


@pytest.mark.parametrize("group", _groups())
def test_every_option_of_every_group_composes_and_instantiates(group, tmp_path):
    """Every option composes and names a target that imports; options that need no data,
    weights or network are also built (the others are built by their own tests)."""
    from hydra.utils import get_object

    from swp.models.gpt import GPT
    from swp.testing.tiny import compose_cfg

    for option in _options(group):
        # A gradual pruner's final sparsity is the run's target_sparsity (it refuses to start
        # without one); the others ignore it until they prune.
        extra = ["target_sparsity=0.5"] if group == "pruner" else []
        node = compose_cfg([f"{group}={option}", *extra], tmp_path)[group]
        target = get_object(node._target_)
        assert callable(target), (group, option)
        if group == "model" and target is GPT:
            instantiate(node, vocab_size=7)
        elif group == "pruner":
            instantiate(node)(model=GPT(vocab_size=7, block_size=8, n_layer=1, n_head=1, n_embd=8))
        elif group == "logger":
            instantiate(node)(config={}, out_dir=str(tmp_path)).finish()
        elif group == "schedule":
            instantiate(node)


def test_paper_lm_experiment_is_the_10_7m_model(tiny_cfg):
    from swp.testing.tiny import compose_cfg

    cfg = compose_cfg(["experiment=paper_lm"], Path("/nonexistent"))
    model = instantiate(cfg.model, vocab_size=65)  # tiny-shakespeare's 65 characters
    n = sum(p.numel() for p in model.parameters())
    assert 10.6e6 < n < 10.9e6
    assert cfg.model.block_size == 256 and cfg.precision == "bf16" and cfg.schedule.train_steps == 5000
