"""Figures a resume cannot change: for every pruner option and every stage a checkpoint can hold,
a run stopped there and resumed records exactly the results.json (timings aside) and metric
lines of a run that never stopped. Every recorded figure must come from checkpointed state."""

from __future__ import annotations

import os
import signal

import pytest

from swp.cli import run
from swp.errors import RunInterrupted
from swp.run import Run
from swp.stages import Stage
from swp.testing.outcome import results_outcome
from swp.testing.tiny import MICRO, compose_cfg, options

# target_sparsity: GMP needs a final sparsity, and it sends the others through the rate search.
BASE = MICRO + ["target_sparsity=0.5"]
# Every option file, plus the switch that makes SWP calibrate (its calibration figures too).
PRUNERS = {name: [f"pruner={name}"] for name in options("pruner")} | {
    "swp-activation_aware": ["pruner=swp", "pruner.activation_aware=true"]}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """One uninterrupted run per pruner, made on first use."""
    root, made = tmp_path_factory.mktemp("uninterrupted"), {}

    def get(pruner: str):
        if pruner not in made:
            run(compose_cfg(BASE + PRUNERS[pruner], root / pruner))
            made[pruner] = results_outcome(root / pruner)
        return made[pruner]

    return get


def _stop_at(monkeypatch, stage: Stage) -> None:
    """SIGTERM arrives just before the first checkpoint of `stage`: the run writes it and stops."""
    original = Run.save_checkpoint

    def save(self, at, *args, **kwargs):
        if at == stage and not self.stop.requested:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, at, *args, **kwargs)

    monkeypatch.setattr(Run, "save_checkpoint", save)


@pytest.mark.parametrize("stage", list(Stage), ids=[s.label for s in Stage])
@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_a_resumed_run_records_what_an_uninterrupted_one_does(tmp_path, monkeypatch, references, pruner, stage):
    cfg = compose_cfg(BASE + PRUNERS[pruner], tmp_path / "run")
    _stop_at(monkeypatch, stage)
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        run(cfg)
    monkeypatch.undo()
    resumed = run(compose_cfg(BASE + PRUNERS[pruner], tmp_path / "run"))
    assert resumed["resumed_from"].endswith(f"-{stage.label}")
    figures, lines = results_outcome(tmp_path / "run")
    expected_figures, expected_lines = references(pruner)
    assert {k: (v, expected_figures.get(k)) for k, v in figures.items() if v != expected_figures.get(k)} == {}
    assert figures == expected_figures and lines == expected_lines
    # The example: SparseGPT stopped after pruning recorded calibration_tokens: 0. Here 8
    # calibration batches of 4 x 16 tokens.
    assert figures["calibration_tokens"] == (8 * 4 * 16 if figures["calibration_batches"] else 0)
