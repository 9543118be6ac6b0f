"""Gradual magnitude pruning: the cubic schedule by hand, the pruner's updates, zeroing and
optimizer state, its final masks, and a pinned tiny run."""

import pytest
import torch

from swp.errors import ConfigError
from swp.pruners.gmp import GMPPruner
from swp.pruning.gradual import cubic_sparsity, is_update_step
from swp.testing.blocks import TwoBlocks


def test_cubic_schedule_by_hand():
    s = lambda t: cubic_sparsity(t, 0.0, 0.8, 0, 100)  # noqa: E731
    assert s(0) == 0.0 and s(100) == 0.8 and s(250) == 0.8
    assert s(50) == pytest.approx(0.8 - 0.8 * 0.5 ** 3)  # 0.7
    assert s(25) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)  # 0.4625
    assert cubic_sparsity(30, 0.2, 0.6, 20, 60) == pytest.approx(0.6 - 0.4 * 0.75 ** 3)
    assert cubic_sparsity(10, 0.2, 0.6, 20, 60) == 0.2  # before t0: s_i
    rising = [s(t) for t in range(0, 101, 10)]
    assert rising == sorted(rising) and rising[1] - rising[0] > rising[-1] - rising[-2]  # fast, then slow


def test_update_steps():
    assert [t for t in range(40) if is_update_step(t, 5, 27, 10)] == [5, 15, 25, 27]


def test_pruner_prunes_during_training_and_zeroes_optimizer_state():
    model = TwoBlocks()
    pruner = GMPPruner(model, final_sparsity=0.75, end_step=6, update_every=2, start_step=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(16, 8)
    history = []
    for step in range(8):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        pruner.on_train_step(step, opt)
        if pruner.current is not None:
            for name, p in pruner.params.items():
                pruned = ~pruner.current.keep[name]
                assert bool((p[pruned] == 0).all()), (step, name)  # re-zeroed after every step
                assert bool((opt.state[p]["exp_avg"][pruned] == 0).all())
            history.append((step + 1, pruner.current_sparsity, dict(pruner.current.keep)))
    # Updates after 2, 4, 6 steps done: s_t = 0.75 - 0.75 (1 - (t-2)/4)^3.
    assert [h[1] for h in history if h[0] in (2, 4, 6)] == pytest.approx([0.0, 0.75 - 0.75 / 8, 0.75])
    for t, s_t, keep in history:
        for name, k in keep.items():  # uniform: every tensor at s_t exactly
            assert int((~k).sum()) == round(s_t * k.numel()), (t, name)
    for (_, _, before), (_, _, after) in zip(history, history[1:]):
        assert not any(bool((after[n] & ~before[n]).any()) for n in before)  # pruned weights stay pruned
    keep, thresholds = pruner.masks(1.234)  # prune_rate plays no part
    assert thresholds == {} and all(torch.equal(keep[n], history[-1][2][n]) for n in keep)


def test_final_masks_reach_final_sparsity_when_the_schedule_did_not():
    model = TwoBlocks()
    pruner = GMPPruner(model, final_sparsity=0.5, end_step=1000)
    keep, _ = pruner.masks(0.0)
    assert all(int((~k).sum()) == round(0.5 * k.numel()) for k in keep.values())


def test_state_round_trips():
    model = TwoBlocks()
    pruner = GMPPruner(model, final_sparsity=0.5, end_step=1, update_every=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    pruner.on_train_step(0, opt)
    other = GMPPruner(model, final_sparsity=0.5, end_step=1, update_every=1)
    other.load_state_dict(pruner.state_dict())
    assert other.current_sparsity == 0.5 and all(torch.equal(other.current.keep[n], pruner.current.keep[n])
                                                  for n in pruner.params)


def test_check_target_refuses_a_target_other_than_final_sparsity():
    pruner = GMPPruner(TwoBlocks(), final_sparsity=0.5, end_step=10)
    pruner.check_target(0.5)
    pruner.check_target(None)
    with pytest.raises(ConfigError, match="differs from pruner.final_sparsity"):
        pruner.check_target(0.6)
