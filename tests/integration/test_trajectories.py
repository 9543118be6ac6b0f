"""Weight trajectories: the choice of weights on hand-made histories, the recorder, the files."""

import json

from safetensors.torch import load_file

from swp.analysis.trajectories import (
    Trajectories,
)
from swp.cli import run


def test_magnitude_run_records_trajectories_and_figures(tiny_cfg, tmp_path):
    """Every pruner gets the figures; flags agree with the saved masks, points with tracking."""
    results = run(tiny_cfg("pruner=magnitude", "prune_rate=0.8", "trajectories.per_tensor=16"))
    out = tmp_path / "run"
    traj = Trajectories.load(out / "trajectories.npz")
    assert traj.steps.tolist() == list(range(0, 61, 5))  # init + 12 tracking points (every 5 of 60)
    assert traj.values.shape == (8 * 16, 13)
    masks = load_file(out / "masks.safetensors")
    expected = [not bool(masks[t].reshape(-1)[i]) for t, i in zip(traj.tensor, traj.index)]
    assert traj.pruned.tolist() == expected and 0 < traj.pruned.mean() < 1
    weights = load_file(out / "model.safetensors")
    # The last point is the end of dense training, so pruned weights still hold their values
    # there and are 0 in the saved (pruned, fine-tuned) model.
    for t, i, p in zip(traj.tensor[:16], traj.index[:16], traj.pruned[:16]):
        assert (float(weights[t].reshape(-1)[i]) == 0.0) == bool(p)
    for name in ("fig1_trajectories.png", "fig2_patterns.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "results.json").read_text())["sparsity"] == results["sparsity"]


def test_trajectories_can_be_turned_off(tiny_cfg, tmp_path):
    run(tiny_cfg("pruner=none", "trajectories.per_tensor=0", "schedule.train_steps=10", "schedule.finetune_steps=0"))
    assert not (tmp_path / "run" / "trajectories.npz").exists()
    assert not (tmp_path / "run" / "fig1_trajectories.png").exists()
