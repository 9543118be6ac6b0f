"""The plan checks on their own: memory against a given machine, FSDP2 in one process, state
devices, and what each pruner caps or notes (`Pruner.plan`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from swp.errors import ConfigError
from swp.preflight import Demand, check_distributed, check_memory, check_state_device


def test_memory_is_summed_per_device_and_the_setting_to_lower_named():
    mib = 1 << 20
    needs = [Demand("the model", 60 * mib, "cpu", "model", "smaller"),
             Demand("the state", 50 * mib, "cpu", "pruner.window", "lower it"),
             Demand("the batch", 10 * mib, "cuda", "dataset.batch_size", "lower it")]
    check_memory(needs, lambda kind: 120 * mib, torch.device("cpu"))  # 110 on cpu, 10 on cuda: fits
    # Without the state it would fit: the state is named, not the (larger) model.
    with pytest.raises(ConfigError, match=r"^pruner.window: the state would take 50.0 MiB \(110.0 MiB with the rest\), "
                                          r"more than this machine's 100.0 MiB of memory; lower it$"):
        check_memory(needs, lambda kind: 100 * mib, torch.device("cpu"))
    # Nothing alone would make it fit: the largest is named.
    with pytest.raises(ConfigError, match=r"^model: the model would take 60.0 MiB"):
        check_memory(needs, lambda kind: 40 * mib, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"more than this machine's 5.0 MiB of GPU memory"):
        check_memory(needs, lambda kind: 5 * mib if kind == "cuda" else 1000 * mib, torch.device("cuda"))


def test_fsdp_in_one_process_is_refused():
    check_distributed(SimpleNamespace(shards_parameters=True, world_size=2))
    check_distributed(SimpleNamespace(shards_parameters=False, world_size=1))
    with pytest.raises(ConfigError, match="distributed=fsdp needs at least 2 processes"):
        check_distributed(SimpleNamespace(shards_parameters=True, world_size=1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_state_device_this_machine_lacks_is_refused(name):
    check_state_device(None)
    check_state_device("cpu")
    with pytest.raises(ConfigError, match=f"pruner.state_device={name} was asked for but CUDA is not available"):
        check_state_device(name)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))


@pytest.mark.parametrize("window, points, capped", [(None, 5, None), (3, 5, None), (4, 5, None), (5, 5, 4),
                                                    (10**6, 3, 2)])
def test_swp_narrows_a_window_wider_than_the_run(window, points, capped):
    from swp.pruners.swp import SWPPruner

    pruner = SWPPruner(_model(), window=window)
    notes = pruner.plan(points, 100)
    assert pruner.window == (window if capped is None else capped) and len(notes) == (capped is not None)
    copies = 1 if window is None else pruner.window + 1
    assert pruner.planned_state(points)[0] == copies * (64 + 32) * 4


def test_swp_scores_are_the_same_with_the_narrowed_window():
    from swp.pruners.swp import SWPPruner

    model = _model()
    wide, narrow = SWPPruner(model, window=50), SWPPruner(model, window=2)
    wide.plan(3, 6)
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * (step + 1))
        wide.observe()
        narrow.observe()
    for name in wide.params:
        assert torch.equal(wide.importance()[name], narrow.importance()[name])


def test_swp_resumes_the_ring_it_saved_whatever_its_window():
    """A checkpoint made before the window was narrowed holds a wider ring: the ring's size wins."""
    from swp.pruners.swp import SWPPruner

    old = SWPPruner(_model(), window=9)
    old.observe()
    new = SWPPruner(_model(), window=9)
    new.plan(3, 6)
    new.load_state_dict(old.state_dict())
    assert new.window == 9 and len(new.ring_points) == 10


def test_swp_without_tracking_points_is_refused():
    from swp.pruners.swp import SWPPruner

    with pytest.raises(ConfigError, match=r"no tracking point \(schedule.train_steps=0\)"):
        SWPPruner(_model()).plan(0, 0)


@pytest.mark.parametrize("end_step, update_every, says", [
    (6, 2, []), (100, 2, ["pruner.end_step=100 is after the dense phase's 6 steps"]),
    (6, 10, ["pruner.update_every=10 leaves no update before the last one (step 6)"]),
])
def test_gmp_notes_a_ramp_the_dense_phase_does_not_hold(end_step, update_every, says):
    from swp.pruners.gmp import GMPPruner

    notes = GMPPruner(_model(), final_sparsity=0.5, end_step=end_step, update_every=update_every).plan(3, 6)
    assert len(notes) == len(says) and all(n.startswith(s) for n, s in zip(notes, says))
