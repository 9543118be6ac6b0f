"""Quality against tokens: evaluations at fixed token counts (results.json ``curve``), the token
accounting by phase, and a run resumed from a checkpoint at an evaluation's step."""

import json

import pytest

from swp.cli import run
from swp.tasks.char_lm import CharLMTask

TPS = 8 * 32  # the tiny config's tokens per step (batch 8 x context 32)
EVERY = 7 * TPS  # every 7 steps' tokens: not a divisor of the 60 + 20 steps
CK = ("checkpoint.every=7", "checkpoint.keep_after_success=true", "trajectories.per_tensor=8")


def test_points_at_fixed_token_counts_and_tokens_by_phase(tiny_cfg, tmp_path):
    r = run(tiny_cfg(f"schedule.eval_every_tokens={EVERY}", "target_sparsity=0.5"))
    inside = [(p["tokens"], p["stage"]) for p in r["curve"] if p["stage"] in ("train", "finetune")]
    # 60 dense + 20 fine-tuning steps: multiples of 7 steps, except at a phase's last step (its stage's)
    assert inside == [(k * EVERY, "train") for k in range(1, 9)] + [(k * EVERY, "finetune") for k in (9, 10, 11)]
    stages = [(p["tokens"], p["stage"]) for p in r["curve"] if p["stage"] not in ("train", "finetune")]
    assert stages == [(60 * TPS, "dense"), (60 * TPS, "pruned"), (80 * TPS, "final")]
    assert r["curve"][-1]["val_loss"] == r["val_loss"]
    # SWP prunes once at the end of the dense phase: dense 60 steps, recovery 20
    assert (r["tokens_dense"], r["tokens_pruning"], r["tokens_recovery"]) == (60 * TPS, 0, 20 * TPS)
    assert r["tokens_total"] == 80 * TPS and r["calibration_tokens"] == 0
    logged = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [d["tokens"] for d in logged if "tokens" in d] == [t for t, _ in inside]


@pytest.mark.parametrize("pruner, expected", [
    ("none", (80, 0, 0)),  # the control trains dense throughout
    ("wanda", (60, 0, 20)),  # calibration tokens beside, not in the total
    ("gmp", (10, 40, 30)),  # the ramp from step 10 to 50, then 10 dense steps and the fine-tune with fixed masks
], ids=["none", "wanda", "gmp"])
def test_tokens_by_phase_add_up(tiny_cfg, pruner, expected):
    extra = ["pruner.start_step=10", "pruner.end_step=50"] if pruner == "gmp" else []
    r = run(tiny_cfg(f"pruner={pruner}", "target_sparsity=0.5", "schedule.train_steps=60", *extra))
    got = (r["tokens_dense"], r["tokens_pruning"], r["tokens_recovery"])
    assert got == tuple(e * TPS for e in expected) and sum(got) == r["tokens_total"] == 80 * TPS
    assert (r["calibration_tokens"] > 0) == (pruner == "wanda")


def test_resume_from_a_checkpoint_at_an_evaluation_step_keeps_the_point(tiny_cfg, tmp_path, monkeypatch):
    """The evaluation at step 14 comes after that step's checkpoint; a run that crashed later
    resumes from it and evaluates first, so its curve and metrics.jsonl equal an uninterrupted run's."""
    from swp.testing.outcome import assert_same_outcome, run_outcome

    cfg = (f"schedule.eval_every_tokens={2 * EVERY}", *CK)
    run(tiny_cfg(*cfg, out="reference"))
    calls, original = [0], CharLMTask.train_batch

    def crash_at_17(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 17:
            raise RuntimeError("simulated power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CharLMTask, "train_batch", crash_at_17)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tiny_cfg(*cfg))
    monkeypatch.undo()
    assert run(tiny_cfg(*cfg))["resumed_from"] == "000000014-0-train"
    assert_same_outcome(run_outcome(tmp_path / "run"), run_outcome(tmp_path / "reference"))
