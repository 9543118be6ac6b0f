"""Weight trajectories: the choice of weights on hand-made histories, the recorder, the files."""


import numpy as np
import pytest
import torch
from torch import nn

from swp.analysis.trajectories import (
    Trajectories,
    TrajectoryRecorder,
    kept_and_pruned,
    largest_rise,
    most_divergent,
    most_stable,
    random_weights,
)
from swp.errors import ConfigError

# Five weights over four points, built so each rule has one clear answer.
H = np.array(
    [
        [0.10, 0.10, 0.10, 0.10],  # 0: flat (range 0)
        [0.10, 0.30, 0.60, 0.90],  # 1: |w| rises 0.80
        [-0.20, -0.40, -0.50, -0.50],  # 2: |w| rises 0.30, range 0.30
        [0.11, 0.05, -0.20, -0.60],  # 3: starts next to 0 and 4 ...
        [0.12, 0.15, 0.20, 0.22],  # 4: ... but ends 0.82 away from 3
    ],
    dtype=np.float32,
)


def test_largest_rise_orders_by_growth_in_magnitude():
    # |w_T| - |w_0|: 0, 0.8, 0.3, 0.49, 0.10
    assert largest_rise(H, 3).tolist() == [1, 3, 2]


def test_most_stable_orders_by_smallest_range():
    # ranges: 0, 0.8, 0.3, 0.71, 0.10
    assert most_stable(H, 2).tolist() == [0, 4]


def test_most_divergent_picks_weights_that_start_alike_and_end_apart():
    # Sorted by first value: 2 (-0.2), 0 (0.10), 1 (0.10), 3 (0.11), 4 (0.12). Windows of 2:
    # (2,0): 0.6-0.3=0.30  (0,1): 0.8-0=0.80  (1,3): 1.5-0.01=1.49  (3,4): 0.82-0.01=0.81
    assert most_divergent(H, 2).tolist() == [1, 3]
    assert most_divergent(H, 9).tolist() == [2, 0, 1, 3, 4]  # fewer rows than k: all, by first value


def test_random_and_kept_vs_pruned_choices():
    rows = random_weights(10, 4, seed=3)
    assert len(set(rows.tolist())) == 4 and rows.tolist() == random_weights(10, 4, seed=3).tolist()
    assert sorted(random_weights(3, 8, seed=0).tolist()) == [0, 1, 2]
    pruned = np.array([True, False, False, True, False, False])
    chosen = kept_and_pruned(pruned, 4, seed=0)
    assert pruned[chosen].sum() == 2 and (~pruned[chosen]).sum() == 2
    only_kept = kept_and_pruned(np.zeros(5, dtype=bool), 4, seed=0)  # nothing pruned: all kept
    assert len(only_kept) == 4 and len(set(only_kept.tolist())) == 4


def test_recorder_gathers_the_sampled_values_and_marks_pruned(tmp_path):
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(4, 5)), nn.Parameter(torch.randn(2, 2))
    rec = TrajectoryRecorder({"a": a, "b": b}, per_tensor=6, seed=1)
    assert [len(i) for i in rec.indices] == [6, 4]  # a smaller tensor is taken whole
    with torch.no_grad():
        a.add_(1.0)
    rec.record(7)
    keep = {"a": torch.ones(4, 5, dtype=torch.bool), "b": torch.tensor([[True, False], [False, True]])}
    traj = rec.result(keep)
    ia = rec.indices[0]
    assert traj.steps.tolist() == [0, 7] and traj.values.shape == (10, 2)
    np.testing.assert_allclose(traj.values[:6, 1], a.detach().reshape(-1)[ia].numpy())
    np.testing.assert_allclose(traj.values[:6, 0], a.detach().reshape(-1)[ia].numpy() - 1.0, rtol=1e-6)
    assert traj.tensor.tolist() == ["a"] * 6 + ["b"] * 4 and traj.pruned.tolist() == [False] * 6 + [
        False,
        True,
        True,
        False,
    ]
    assert TrajectoryRecorder({"a": a}, per_tensor=6, seed=1).indices[0].tolist() == ia.tolist()  # seeded
    traj.save(tmp_path / "t.npz")
    back = Trajectories.load(tmp_path / "t.npz")
    assert back.labels([7]) == ["b[1] (pruned)"] and np.array_equal(back.values, traj.values)
    with pytest.raises(ConfigError, match="per_tensor"):
        TrajectoryRecorder({"a": a}, per_tensor=-1, seed=0)


