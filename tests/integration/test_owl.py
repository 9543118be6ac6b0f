"""``allocation: owl`` through the real run(cfg): the character GPT and a tiny random Llama for
each of the four pruners that offer it, the results and metric lines it writes, the dense cache
it shares, and exact resume right after pruning."""

from __future__ import annotations

import json
import os
import signal

import pytest

from swp.cli import run
from swp.errors import RunInterrupted
from swp.tasks.char_lm import CharLMTask
from swp.testing.hf_tiny import HF_TINY, data_files_override
from swp.testing.outcome import assert_same_outcome, run_outcome
from swp.testing.tiny import compose_cfg

OWL_PRUNERS = ["magnitude_owl", "swp_owl", "wanda_owl", "sparsegpt_owl"]
ROWS = {"wanda_owl"}  # prunes the same count in every row of a tensor (per-row rounding)
# The tiny GPT's two blocks have close outlier ratios at the paper's M = 5; lambda 0.1 makes the
# allocation visible (0.4 / 0.6 at 50%).
OWL = ("target_sparsity=0.5", "pruner.owl_lambda=0.1")


def _check_allocation(results: dict, blocks: list[str], pruner: str, m: float = 5.0, target: float = 0.5) -> None:
    """owl_layers names the blocks, their sparsities average to the target, fewer outliers mean
    more sparsity, and every tensor is pruned at its block's sparsity (to one weight per row or
    tensor)."""
    layers = results["owl_layers"]
    assert [b["layer"] for b in layers] == blocks and results["allocation"] == "owl"
    assert results["owl_m"] == m and results["owl_lambda"] == 0.1
    sizes = [b["numel"] for b in layers]
    assert sum(sizes) == results["prunable_params"]
    assert sum(b["numel"] * b["sparsity"] for b in layers) == pytest.approx(target * sum(sizes), rel=1e-12)
    ratios, sparsities = [b["outlier_ratio"] for b in layers], [b["sparsity"] for b in layers]
    assert len(set(ratios)) == len(blocks)
    assert sorted(range(len(blocks)), key=ratios.__getitem__) == sorted(range(len(blocks)),
                                                                          key=lambda i: -sparsities[i])
    for tensor in results["layers"]:
        block = next(b for b in layers if tensor["name"].startswith(b["layer"] + "."))
        slack = 0.5 / 32 if pruner in ROWS else 0.5 / tensor["numel"]  # half a weight per row (>= 32 wide) or tensor
        assert abs(tensor["sparsity"] - block["sparsity"]) <= slack + 1e-12, tensor["name"]


def _metric_lines(folder) -> dict:
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return next(x for x in lines if "prune/sparsity" in x)


# Pinned: the tiny GPT at 50% (lambda 0.1), right after pruning and after the fine-tune.
PINNED = {
    "magnitude_owl": (3.3836084604263306, 3.3409279584884644),
    "swp_owl": (3.3845017552375793, 3.3411656618118286),
    "wanda_owl": (3.3842419385910034, 3.341968059539795),
    "sparsegpt_owl": (3.3844897747039795, 3.3427202105522156),
}


@pytest.mark.parametrize("pruner", OWL_PRUNERS)
def test_character_gpt(pruner, tiny_cfg, tmp_path):
    results = run(tiny_cfg(f"pruner={pruner}", *OWL))
    _check_allocation(results, ["blocks.0", "blocks.1"], pruner)
    assert results["sparsity"] == pytest.approx(0.5, abs=1 / 64)
    assert results["calibration_tokens"] == 8 * 8 * 32  # batches x sequences x tokens
    assert (results["pruned_val_loss"], results["val_loss"]) == pytest.approx(PINNED[pruner], rel=1e-6)
    line = _metric_lines(tmp_path / "run")
    for b in results["owl_layers"]:
        assert line[f"prune/layer/{b['layer']}/owl_sparsity"] == b["sparsity"]
        assert line[f"prune/layer/{b['layer']}/owl_outlier_ratio"] == b["outlier_ratio"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["owl_layers"] == results["owl_layers"]


@pytest.mark.parametrize("pruner", OWL_PRUNERS)
def test_tiny_llama(pruner, tmp_path, assets):
    results = run(compose_cfg([
        *HF_TINY, data_files_override(assets), f"model.name_or_path={assets['llama']}", f"pruner={pruner}",
        "schedule.train_steps=4", "schedule.track_every=2", "schedule.finetune_steps=0", "export=none",
        "pruner.calibration_batches=2", "pruner.owl_m=3", *OWL,
    ], tmp_path / "run"))
    _check_allocation(results, ["model.layers.0", "model.layers.1"], pruner, m=3.0)
    assert results["sparsity"] == pytest.approx(0.5, abs=1 / 64)
    assert results["val_ppl"] == results["pruned_val_ppl"]  # one-shot


def test_owl_shares_the_dense_phase_with_the_other_allocations(tiny_cfg, tmp_path):
    cache = ("dense_cache.enabled=true", f"dense_cache.dir={tmp_path / 'cache'}", "target_sparsity=0.5")
    first = run(tiny_cfg("pruner=swp", *cache, out="a"))
    owl = run(tiny_cfg("pruner=swp_owl", *cache, out="b"))
    assert (first["dense_cache"], owl["dense_cache"]) == ("miss", "hit")
    assert owl["dense_val_loss"] == first["dense_val_loss"] and owl["tracking_points"] == first["tracking_points"]
    assert "owl_layers" not in first and len(owl["owl_layers"]) == 2


def test_sigint_right_after_pruning_resumes_exactly(tiny_cfg, tmp_path, monkeypatch):
    overrides = ("pruner=magnitude_owl", *OWL, "checkpoint.keep_after_success=true")
    reference = run(tiny_cfg(*overrides, out="reference"))
    original, calls = CharLMTask.evaluate, [0]

    def evaluate(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:  # the pruned evaluation
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CharLMTask, "evaluate", evaluate)
    with pytest.raises(RunInterrupted, match="SIGINT right after pruning"):
        run(tiny_cfg(*overrides))
    monkeypatch.undo()
    results = run(tiny_cfg(*overrides))
    assert results["resumed_from"] == "000000060-2-pruned" and results["owl_layers"] == reference["owl_layers"]
    assert_same_outcome(run_outcome(tmp_path / "run"), run_outcome(tmp_path / "reference"))
