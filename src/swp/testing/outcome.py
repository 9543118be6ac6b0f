"""What two runs must share to count as the same run: a resumed run against an uninterrupted one,
a dense-cache hit against training the stage (figures, masks, weights, metric lines, trajectories)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from swp.analysis.trajectories import Trajectories

# Timings, and the energy estimates made from them, differ between any two runs; the rest may not.
TIMINGS = ("wall_s", "train_tokens_per_s", "finetune_tokens_per_s", "resumed_from", "energy_phases", "stage_seconds",
           "stage_cpu_seconds")
TIMING_PREFIXES = ("energy_kwh", "co2_kg", "carbon_intensity")


def comparable_figures(results: dict) -> dict:
    """results.json without the figures that are timings (or made from them)."""
    return {k: v for k, v in results.items() if k not in TIMINGS and not k.startswith(TIMING_PREFIXES)}


def metric_lines(folder: Path) -> list[dict]:
    """metrics.jsonl's lines without the summary and the throughput (a timing, like wall_s)."""
    return [{k: v for k, v in json.loads(ln).items() if k != "tokens_per_s"}
            for ln in (folder / "metrics.jsonl").read_text().splitlines() if not ln.startswith('{"summary"')]


def results_outcome(folder: Path) -> tuple[dict, list[dict]]:
    """The recorded figures and metric lines of a finished run: what a resume may never change."""
    return comparable_figures(json.loads((folder / "results.json").read_text())), metric_lines(folder)


def run_outcome(folder: Path):
    """What must be identical: figures, masks, final weights and the metric lines."""
    figures, lines = results_outcome(folder)
    traj = Trajectories.load(folder / "trajectories.npz")  # Figs. 1-2 histories survive the stop too
    return (figures, load_file(folder / "masks.safetensors"), load_file(folder / "model.safetensors"), lines,
            (traj.steps.tolist(), traj.values.tolist()))


def assert_same_outcome(a, b) -> None:
    """Two run outcomes are identical, to the last bit of every figure, mask and weight."""
    fig_a, masks_a, w_a, lines_a, traj_a = a
    fig_b, masks_b, w_b, lines_b, traj_b = b
    assert fig_a == fig_b  # every loss to the last bit, sparsities, rates, per-layer thresholds
    assert masks_a.keys() == masks_b.keys() and all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert lines_a == lines_b  # metrics.jsonl reads as if the run had never stopped
    assert traj_a == traj_b and len(traj_a[0]) > 2  # every tracking point's sampled weights
