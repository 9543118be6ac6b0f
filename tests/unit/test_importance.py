"""Eq. 1 against hand-computed values, and the online clone against the windowed form."""

import pytest
import torch

from swp.pruning.importance import (
    tracked_value,
    update_clone_,
    update_clones_,
    windowed_importance,
)


def test_clone_matches_hand_computed_weighted_average():
    # Points t=1,2,3 with values 3, 6, 1: (1*3 + 2*6 + 3*1) / (1+2+3) = 18/6 = 3.0
    history = [torch.tensor([3.0]), torch.tensor([6.0]), torch.tensor([1.0])]
    clone = torch.zeros(1)
    for t, v in enumerate(history, start=1):
        update_clone_(clone, v, t)
    assert clone.item() == pytest.approx(3.0)


def test_first_point_is_the_value_itself():
    clone = torch.full((2,), 99.0)  # whatever it held, t=1 has weight (t-1)/(t+1) = 0
    update_clone_(clone, torch.tensor([0.5, -2.0]), 1)
    assert clone.tolist() == [0.5, -2.0]


def test_online_equals_window_over_all_points():
    torch.manual_seed(0)
    history = [torch.randn(5, 7) for _ in range(40)]
    clone = torch.zeros(5, 7, dtype=torch.float64)
    for t, v in enumerate(history, start=1):
        update_clone_(clone, v.double(), t)
    windowed = windowed_importance(history, list(range(1, 41)))
    torch.testing.assert_close(clone.float(), windowed, rtol=1e-5, atol=1e-6)


def test_foreach_update_equals_single_update():
    a, b = torch.randn(3, 4), torch.randn(6)
    ca, cb = torch.zeros(3, 4), torch.zeros(6)
    ref_a, ref_b = torch.zeros(3, 4), torch.zeros(6)
    for t in range(1, 5):
        update_clones_([ca, cb], [a * t, b - t], t)
        update_clone_(ref_a, a * t, t)
        update_clone_(ref_b, b - t, t)
    torch.testing.assert_close(ca, ref_a)
    torch.testing.assert_close(cb, ref_b)


def test_window_weights_later_points_more():
    # Window of the last 2 of 4 points: (3*v3 + 4*v4) / 7 with v3=7, v4=0 -> 3.0
    out = windowed_importance([torch.tensor([7.0]), torch.tensor([0.0])], [3, 4])
    assert out.item() == pytest.approx(3.0)


def test_tracked_value_modes():
    w = torch.tensor([-2.0, 1.0])
    assert tracked_value(w, "magnitude").tolist() == [2.0, 1.0]
    assert tracked_value(w, "signed").tolist() == [-2.0, 1.0]
    with pytest.raises(ValueError):
        tracked_value(w, "mean")
    with pytest.raises(ValueError):
        update_clone_(torch.zeros(1), w[:1], 0)
