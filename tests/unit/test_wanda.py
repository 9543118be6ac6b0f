"""Wanda (|W| * ||X_j||, per output row) and activation-aware SWP against hand-computed choices."""

import pytest
import torch
from torch import nn

from swp.pruners.calibration import input_norms
from swp.pruners.swp import SWPPruner
from swp.pruners.wanda import WandaPruner
from swp.pruning.wanda import wanda_scores
from swp.testing.blocks import TwoBlocks, batches, forward


def test_wanda_score_and_per_row_choice_by_hand():
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5],
                      [40.0, 10.0, -10.0, 20.0]])
    norm = torch.tensor([1.0, 0.1, 1.0, 10.0])
    score = wanda_scores(w, norm, input_axis=1)
    assert torch.allclose(score, torch.tensor([[1.0, 0.2, 3.0, 5.0], [40.0, 1.0, 10.0, 200.0]]))
    # Conv1D stores (in, out): the norm runs along axis 0.
    assert torch.equal(wanda_scores(w.t(), norm, input_axis=0), score.t())

    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w)
    pruner = WandaPruner(model, sequential=False)
    pruner.norms = {"0.weight": norm}
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    # Each row prunes its own two lowest (0.2, 1 | 1, 10); the tensor's four lowest would have
    # been 0.2, 1, 1, 3: three from row 0.
    assert keep["0.weight"].tolist() == [[False, False, True, True], [True, False, False, True]]
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.25))
    assert keep["0.weight"].tolist() == [[True, False, True, True], [True, False, True, True]]


def test_wanda_matches_a_brute_force_per_row_reference():
    model = TwoBlocks()
    pruner = WandaPruner(model, sequential=False)
    data = batches()
    pruner.calibrate(model, data, forward)
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.375))  # 3 of every 8 in each row
    for name, p in pruner.params.items():
        module = model.get_submodule(name.rsplit(".", 1)[0])
        seen = []
        h = module.register_forward_pre_hook(lambda _m, a: seen.append(a[0].reshape(-1, a[0].shape[-1])))
        for b in data:
            model(b)
        h.remove()
        x = torch.cat(seen)
        norm = x.pow(2).sum(0).sqrt()
        assert torch.allclose(pruner.norms[name], norm, rtol=1e-5)
        metric = p.detach().abs() * norm
        for row in range(metric.shape[0]):
            lowest = set(torch.argsort(metric[row])[:3].tolist())
            assert set((~keep[name][row]).nonzero().flatten().tolist()) == lowest, (name, row)
    assert pruner.calibration_tokens == 3 * 4 * 5


def test_sequential_wanda_measures_each_block_after_pruning_the_ones_before():
    model, ref = TwoBlocks(), TwoBlocks()
    data = batches()
    calls = []
    model.blocks[1].register_forward_pre_hook(lambda *_: calls.append(1))
    pruner = WandaPruner(model)
    pruner.calibrate(model, data, forward)  # keeps the batches: no dense pass at a target
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    # Block 1's pre-hooks fire twice a batch: as the recording forward stops there (no dense
    # pass runs further), and in its own run on the pruned block 0's outputs.
    assert len(calls) == 2 * len(data)
    # By hand: block 0 from the dense model, then block 1's norms on the pruned block 0.
    for i, block in enumerate(ref.blocks):
        dense = WandaPruner(ref, sequential=False)
        dense.calibrate(ref, data, forward)
        with torch.no_grad():
            for j in (0, 2):
                name = f"blocks.{i}.{j}.weight"
                assert torch.allclose(pruner.norms[name], dense.norms[name], rtol=1e-5), name
                metric = block[j].weight.abs() * dense.norms[name]
                lowest = torch.argsort(metric, dim=1)[:, :4]
                expect = torch.ones_like(metric, dtype=torch.bool).scatter_(1, lowest, False)
                assert torch.equal(keep[name], expect), name
                block[j].weight.mul_(expect)
    for name, p in pruner.params.items():  # already zeroed by the pruner itself
        assert bool((p[~keep[name]] == 0).all())


def test_sequential_wanda_rejects_shared_rate():
    from swp.errors import ConfigError

    with pytest.raises(ConfigError, match="sequential=true needs allocation=uniform"):
        WandaPruner(TwoBlocks(), allocation="shared_rate")


def test_wanda_nm_keeps_the_best_n_of_every_m_in_each_row():
    model = TwoBlocks()
    pruner = WandaPruner(model, nm="2:4")
    pruner.calibrate(model, batches(), forward)
    keep, _ = pruner.masks(0.0)
    score, _ = pruner.scores()
    for name, k in keep.items():
        groups, s = k.reshape(-1, 4), score[name].reshape(-1, 4)
        assert (groups.sum(1) == 2).all()
        assert (s[groups].view(-1, 2).min(1).values >= s[~groups].view(-1, 2).max(1).values).all()


def test_wanda_shared_rate_compares_each_row_with_its_std():
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]]))
    pruner = WandaPruner(model, allocation="shared_rate", sequential=False)
    pruner.norms = {"0.weight": torch.ones(4)}
    keep, _ = pruner.masks(2.0)  # row std = 1.29 / 12.9: keep > 2.58 / 25.8
    assert keep["0.weight"].tolist() == [[False, False, True, True]] * 2


def test_activation_aware_swp_is_history_times_input_norm_per_row():
    model = TwoBlocks()
    plain = SWPPruner(model)
    aware = SWPPruner(model, activation_aware=True)
    assert aware.capabilities.calibrates and aware.capabilities.compare_rows
    assert not plain.capabilities.calibrates and plain.capabilities.calibration is None
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1)
        plain.observe()
        aware.observe()
    data = batches()
    aware.calibrate(model, data, forward)
    norms, _ = input_norms(model, aware.params, data, forward)
    imp, _ = plain.scores()
    score = aware._weighted(aware.scores()[0])  # what every rule compares
    for n in score:
        assert torch.allclose(score[n], imp[n] * norms[n].view(1, -1))
    uniform = SWPPruner(model, activation_aware=True, allocation="uniform")
    uniform.t, uniform.clones = aware.t, aware.clones
    uniform.activation_norms = aware.activation_norms
    keep, _ = uniform.masks(uniform.rate_for_sparsity(0.5))
    assert all(bool((~k).sum(1).eq(4).all()) for k in keep.values())




def test_sequential_wanda_at_a_rate_takes_its_fraction_from_the_dense_norms():
    """Given a prune_rate and no target, the fraction comes from the dense model's norms, measured
    on first use (before any block is pruned): the masks are those of that fraction as a target."""
    from swp.pruning.threshold import pruned_fraction_at_rate

    data, rate = batches(), 1.0
    ref = TwoBlocks()
    dense = WandaPruner(ref, sequential=False)
    dense.calibrate(ref, data, forward)
    fraction = pruned_fraction_at_rate(*dense._compared(*dense.scores()), rate)
    assert 0.1 < fraction < 0.9
    keeps = []
    for use_rate in (True, False):
        model = TwoBlocks()
        model.load_state_dict(ref.state_dict())
        pruner = WandaPruner(model)
        pruner.calibrate(model, data, forward)
        assert not pruner.norms  # nothing measured yet
        keep, _ = pruner.masks(rate if use_rate else pruner.rate_for_sparsity(fraction))
        keeps.append(keep)
        assert pruner.calibration_tokens == 3 * 4 * 5
    assert all(torch.equal(keeps[0][n], keeps[1][n]) for n in keeps[0])
