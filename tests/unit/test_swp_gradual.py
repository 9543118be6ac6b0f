"""Gradual SWP: the straight-through shadow against a dense optimizer, masks that only shrink
without regrowth, and the constructed case of a weight coming back and another leaving."""

import pytest
import torch

from swp.errors import ConfigError
from swp.pruners.swp_gradual import GradualSWPPruner
from swp.pruning.gradual import straight_through_step_
from swp.testing.blocks import TwoBlocks

NAME = "blocks.0.0.weight"


def test_straight_through_step_equals_adamw_on_the_dense_shadow():
    """The masked weight's AdamW step handed to the shadow = AdamW on the dense shadow whose
    gradient is the masked forward's (straight-through), decay included, over several steps."""
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(6, 5, generator=g)
    keep = torch.rand(6, 5, generator=g) > 0.5
    x = torch.randn(7, 5, generator=g)
    lr, wd = 0.05, 0.1
    ref = torch.nn.Parameter(dense.clone())  # the dense shadow, stepped directly
    ref_opt = torch.optim.AdamW([ref], lr=lr, weight_decay=wd)
    w = torch.nn.Parameter(dense * keep)  # the masked weight the model holds
    w_opt = torch.optim.AdamW([w], lr=lr, weight_decay=wd)
    shadow = dense.clone()
    for _ in range(4):
        masked = (ref.detach() * keep).requires_grad_()
        (masked @ x.T).tanh().sum().backward()
        ref.grad = masked.grad  # straight-through: the gradient at the masked weight, every entry
        ref_opt.step()
        w_opt.zero_grad()
        (w @ x.T).tanh().sum().backward()
        w_opt.step()
        with torch.no_grad():
            straight_through_step_(shadow, w.data, keep, 1.0 - lr * wd)
    torch.testing.assert_close(shadow, ref.detach(), rtol=0, atol=1e-6)
    assert torch.equal(w.detach(), shadow * keep) and not (w.detach()[~keep] != 0).any()


def _frozen_opt(model):
    """An optimizer that moves nothing: the test sets every weight itself."""
    return torch.optim.SGD(model.parameters(), lr=0.0)


def test_without_regrowth_the_masks_only_shrink():
    model = TwoBlocks()
    pruner = GradualSWPPruner(model, final_sparsity=0.75, end_step=8, start_step=2, update_every=2)
    opt = _frozen_opt(model)
    history = []
    for step in range(8):
        with torch.no_grad():  # move the weights so that the history would favour pruned ones
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        pruner.on_train_step(step, opt)
        pruner.observe()
        if pruner.current is not None:
            history.append({n: k.clone() for n, k in pruner.current.keep.items()})
            assert all(bool((p.detach()[~pruner.current.keep[n]] == 0).all()) for n, p in pruner.params.items())
    for before, after in zip(history, history[1:]):
        assert all(bool((after[n] <= before[n]).all()) for n in before)  # kept-set only shrinks
    assert pruner.current.sparsity() == 0.75


def test_a_weight_whose_history_rises_comes_back_and_one_that_falls_is_pruned():
    """Constructed: after the first update (50% of each tensor by history), the shadow of the
    weakest pruned weight is made the largest and the weight just above the threshold is set
    to 0; after enough tracking points their histories cross, and the next update swaps them."""
    model = TwoBlocks()
    pruner = GradualSWPPruner(model, final_sparsity=0.5, initial_sparsity=0.5, end_step=1000, start_step=1,
                              update_every=5, regrow=True)
    opt = _frozen_opt(model)
    w = pruner.params[NAME]
    with torch.no_grad():  # distinct magnitudes 1..64, so the order is known
        w.copy_(torch.arange(1.0, 65.0).reshape(8, 8))
    pruner.observe()
    pruner.on_train_step(0, opt)  # the first update, at 1 step done
    keep = pruner.current.keep[NAME].flatten()
    assert int((~keep).sum()) == 32 and not keep[:32].any() and keep[32:].all()  # 1..32 pruned
    rises, falls = 0, 32  # the weights of magnitude 1 (pruned) and 33 (kept, lowest)
    with torch.no_grad():
        pruner.shadow[NAME].view(-1)[rises] = 500.0  # as straight-through steps would grow it
        w.view(-1)[falls] = 0.0  # as training would shrink it
    for step in range(1, 5):  # steps 2..5 done: tracking points on the shadow, then the update
        pruner.on_train_step(step, opt)
        pruner.observe()
        if step < 4:
            assert bool(pruner.current.keep[NAME].view(-1)[falls])  # no update yet
    update = pruner.on_train_step(5, opt)  # 6 steps done: an update (1 + 5)
    keep = pruner.current.keep[NAME].view(-1)
    assert bool(keep[rises]) and not bool(keep[falls])
    assert w.view(-1)[rises].item() == 500.0  # it resumes from its shadow value
    assert w.view(-1)[falls].item() == 0.0 and pruner.shadow[NAME].view(-1)[falls].item() == 0.0
    assert update["prune/flip_rate"] == pytest.approx(2 / pruner_total(pruner))
    assert update["prune/regrown"] == pytest.approx(1 / pruner_total(pruner))
    assert update["prune/mask_sparsity"] == 0.5


def pruner_total(pruner) -> int:
    return sum(p.numel() for p in pruner.params.values())


def test_the_last_update_fixes_the_masks_and_drops_the_shadow():
    model = TwoBlocks()
    pruner = GradualSWPPruner(model, final_sparsity=0.5, end_step=4, start_step=2, update_every=2, regrow=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randn(16, 8)
    for step in range(6):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        pruner.on_train_step(step, opt)
        pruner.observe()
        assert bool(pruner.shadow) == (step == 1 or step == 2)  # from the first update to the last
    for name, p in pruner.params.items():
        pruned = ~pruner.current.keep[name]
        assert not (p.detach()[pruned] != 0).any()
        assert not (opt.state[p]["exp_avg"][pruned] != 0).any()  # fixed masks: moments zeroed


@pytest.mark.parametrize("bad, match", [
    ({"final_sparsity": None}, "needs a final sparsity"),
    ({"initial_sparsity": 0.6}, "initial_sparsity"),
    ({"start_step": 9}, r"pruner.start_step must be <= pruner.end_step \(8\)"),
    ({"update_every": 0}, "update_every"),
], ids=["no-final", "initial-above-final", "start-after-end", "update-every-0"])
def test_bad_schedules_are_refused(bad, match):
    kwargs = {"final_sparsity": 0.5, "end_step": 8} | bad
    with pytest.raises(ConfigError, match=match):
        GradualSWPPruner(TwoBlocks(), **kwargs)
