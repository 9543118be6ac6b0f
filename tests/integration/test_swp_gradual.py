"""Gradual SWP through the real run: the cubic schedule by hand, the flip rate in metrics.jsonl
and W&B, and a run stopped between two mask updates that resumes exactly (shadow included)."""

import json
import os
import signal

import pytest

from swp.cli import run
from swp.errors import RunInterrupted
from swp.logging.wandb_records import find_run_files, read_run
from swp.tasks.char_lm import CharLMTask
from swp.testing.outcome import assert_same_outcome, run_outcome
from swp.testing.tiny import TINY, compose_cfg

# Updates after 10, 20, ..., 60 of the 60 tiny dense steps, s_f = 0.5 from s_i = 0.
GRADUAL = ("pruner=swp_gradual", "target_sparsity=0.5", "pruner.start_step=10", "pruner.update_every=10")
REGROW = GRADUAL + ("pruner.regrow=true",)
CK = ("checkpoint.every=7", "checkpoint.keep_after_success=true")


def _updates(folder) -> dict[int, dict]:
    lines = [json.loads(ln) for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    return {d["step"] + 1: d for d in lines if "prune/flip_rate" in d}


def test_sparsity_at_each_update_is_the_cubic_schedule(tiny_cfg, tmp_path):
    r = run(tiny_cfg(*GRADUAL))
    updates = _updates(tmp_path / "run")
    # s_t = 0.5 - 0.5 * (1 - (t - 10) / 50)^3, by hand
    expected = {10: 0.0, 20: 0.5 - 0.5 * 0.8 ** 3, 30: 0.5 - 0.5 * 0.6 ** 3, 40: 0.5 - 0.5 * 0.4 ** 3,
                50: 0.5 - 0.5 * 0.2 ** 3, 60: 0.5}
    assert sorted(updates) == sorted(expected)
    # 7,680 weights in 8 tensors, each pruned at round(s_t * n): within half a weight per tensor
    for t, s in expected.items():
        assert updates[t]["prune/sparsity_t"] == pytest.approx(s, abs=1e-12)
        assert updates[t]["prune/mask_sparsity"] == pytest.approx(s, abs=8 * 0.5 / 7680)
    # without regrowth a flip is a newly pruned weight: flips add up to the sparsity
    assert sum(u["prune/flip_rate"] for u in updates.values()) == pytest.approx(0.5)
    assert all(u["prune/regrown"] == 0.0 for u in updates.values())
    assert r["sparsity"] == 0.5 and r["pruned_val_loss"] == r["dense_val_loss"]  # the prune stage keeps them


@pytest.fixture(scope="module")
def regrow_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    results = run(compose_cfg(TINY + list(REGROW + CK) + ["logger=wandb", "trajectories.per_tensor=8"], out))
    return out, results


def test_regrow_logs_its_flip_rate_to_metrics_and_wandb(regrow_reference):
    out, r = regrow_reference
    updates = _updates(out)
    assert sum(u["prune/regrown"] for u in updates.values()) > 0  # weights came back in this run
    for u in updates.values():  # flips = newly pruned + regrown, so at least the rise in sparsity
        assert u["prune/flip_rate"] >= u["prune/regrown"]
    (path,) = find_run_files(out)
    logged = read_run(path, wait_s=30).series("prune/flip_rate")
    assert [(step + 1, v) for step, v in logged] == [(t, u["prune/flip_rate"]) for t, u in updates.items()]
    assert r["sparsity"] == 0.5
    assert r["val_loss"] == pytest.approx(3.340260, rel=1e-5)  # pinned


def test_regrow_stopped_between_updates_resumes_exactly(tmp_path, monkeypatch, regrow_reference):
    calls = [0]
    original = CharLMTask.train_batch

    def stop_at_34(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 34:  # after the update at 30, with a straight-through shadow in flight
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CharLMTask, "train_batch", stop_at_34)
    cfg = lambda: compose_cfg(TINY + list(REGROW + CK) + ["trajectories.per_tensor=8"], tmp_path / "run")  # noqa: E731
    with pytest.raises(RunInterrupted, match="train step 34"):
        run(cfg())
    monkeypatch.undo()
    assert run(cfg())["resumed_from"] == "000000034-0-train"
    reference, _ = regrow_reference
    assert_same_outcome(run_outcome(tmp_path / "run"), run_outcome(reference))
