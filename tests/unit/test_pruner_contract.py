"""The contract every pruner option keeps (one case per conf/pruner/*.yaml, so a new pruner
that follows docs/extending.md is checked by adding its YAML): its state round-trips, a
target_sparsity is met exactly, a tracking pruner's state moves when it observes, and every
option that can change the dense phase changes the dense cache's key."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from swp.config import CONF_DIR
from swp.infra.dense_cache import tracking_spec
from swp.launch import build
from swp.models.gpt import GPT
from swp.testing.tiny import compose_cfg

OPTIONS = sorted(p.stem for p in (CONF_DIR / "pruner").glob("*.yaml"))
TARGET = 0.5


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def _batches(n: int = 3):
    g = torch.Generator().manual_seed(3)
    return [(torch.randint(11, (4, 8), generator=g), torch.randint(11, (4, 8), generator=g)) for _ in range(n)]


def _forward(model, batch) -> None:
    with torch.no_grad():
        model(*batch)


def _config(option: str, tmp_path: Path) -> dict:
    cfg = compose_cfg([f"pruner={option}", f"target_sparsity={TARGET}", "schedule.train_steps=20"], tmp_path)
    return OmegaConf.to_container(cfg.pruner, resolve=True)


def _build(node: dict, model):
    return build("pruner", OmegaConf.create(node))(model=model)


def _drift(model, t: int) -> None:
    """A new tracking point: every weight moves (deterministically), as training would move it."""
    g = torch.Generator().manual_seed(100 + t)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _prepared(node: dict, seed: int = 0):
    """A pruner on a fresh model, after three tracking points and its calibration (if any)."""
    model = _model(seed)
    pruner = _build(node, model)
    for t in range(3):
        _drift(model, t)
        pruner.on_train_step(t, torch.optim.SGD(model.parameters(), lr=0.0))
        if pruner.capabilities.tracks:
            pruner.observe()
    if pruner.capabilities.calibrates:
        pruner.calibrate(model, _batches(pruner.capabilities.calibration.batches), _forward)
    return model, pruner


@pytest.mark.parametrize("option", OPTIONS)
def test_state_round_trips_to_the_same_masks(option, tmp_path):
    node = _config(option, tmp_path)
    model, pruner = _prepared(node)
    if not pruner.capabilities.prunes:
        assert pruner.state_dict() == {}
        return
    state = copy.deepcopy(pruner.state_dict())
    weights = copy.deepcopy(model.state_dict())
    twin_model = _model(seed=1)
    twin_model.load_state_dict(weights)
    twin = _build(node, twin_model)
    twin.load_state_dict(state)
    if twin.capabilities.calibrates:  # calibration inputs are not state: the run draws them again
        twin.calibrate(twin_model, _batches(twin.capabilities.calibration.batches), _forward)
    rate = pruner.rate_for_sparsity(TARGET)
    assert twin.rate_for_sparsity(TARGET) == rate
    mine, theirs = pruner.masks(rate)[0], twin.masks(rate)[0]
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[n], theirs[n]) for n in mine)


def _expected_pruned(pruner, target: float) -> int:
    """What 'exactly target' means for this pruner's allocation (rounding per tensor or per row;
    under ``owl`` each tensor at its block's sparsity, whose size-weighted mean is the target)."""
    caps = pruner.capabilities
    if pruner.nm:
        return sum(p.numel() * (pruner.nm[1] - pruner.nm[0]) // pruner.nm[1] for p in pruner.params.values())
    if pruner.allocation not in ("uniform", "owl"):
        return round(target * sum(p.numel() for p in pruner.params.values()))
    fractions = pruner.tensor_fractions(target)
    assert sum(f * pruner.params[n].numel() for n, f in fractions.items()) == pytest.approx(
        target * sum(p.numel() for p in pruner.params.values()), abs=1e-6)
    total = 0
    for name, p in pruner.params.items():
        inputs = p.shape[pruner.input_axis[name]]
        rows = p.numel() // inputs
        total += rows * round(fractions[name] * inputs) if caps.compare_rows else round(fractions[name] * p.numel())
    return total


@pytest.mark.parametrize("option", OPTIONS)
def test_target_sparsity_is_met_exactly(option, tmp_path):
    _, pruner = _prepared(_config(option, tmp_path))
    if not pruner.capabilities.prunes:
        return
    keep, _ = pruner.masks(pruner.rate_for_sparsity(TARGET))
    pruned = sum(int((~k).sum()) for k in keep.values())
    assert pruned == _expected_pruned(pruner, TARGET)
    assert math.isclose(pruned / sum(k.numel() for k in keep.values()), TARGET, abs_tol=0.02)


@pytest.mark.parametrize("option", OPTIONS)
def test_a_tracking_pruner_changes_its_state_when_it_observes(option, tmp_path):
    node = _config(option, tmp_path)
    model = _model()
    pruner = _build(node, model)
    if not pruner.capabilities.tracks or pruner.capabilities.modifies_dense:
        return  # GMP acts in on_train_step (its own tests); the others record nothing
    pruner.observe()
    before = copy.deepcopy(pruner.state_dict())
    _drift(model, 0)
    pruner.observe()
    after = pruner.state_dict()
    assert pruner.tracking_points == 2
    changed = [k for k in before if isinstance(before[k], dict) and any(
        not torch.equal(before[k][n], after[k][n]) for n in before[k])]
    assert changed, "observe() left every tracked tensor unchanged"


def _alternative(value):
    """Another valid value of the same type, for an option that shapes the dense phase."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.25
    if value is None:
        return 3
    return None


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_that_shapes_the_dense_phase_is_in_its_cache_key(option, tmp_path):
    node = _config(option, tmp_path)
    caps = _build(node, _model()).capabilities
    base = tracking_spec(node, caps)
    if base is None:
        assert not caps.tracks
        return
    keyed = [k for k in node if not k.startswith("_") and k not in caps.mask_options]
    assert keyed, "a tracking pruner with no option in its key"
    for key in keyed:
        other = _alternative(node[key])
        if other is None:
            continue
        changed = dict(node, **{key: other})
        assert tracking_spec(changed, caps) != base, f"pruner.{key} changes the dense phase but not the cache key"
    for key in caps.mask_options:  # and the options that only shape masks share one entry
        if key in node and _alternative(node[key]) is not None:
            assert tracking_spec(dict(node, **{key: _alternative(node[key])}), caps) == base


def _tracked_state(node: dict):
    """The state a tracking pruner holds after the same three tracking points."""
    return _prepared(node)[1].state_dict()


def _same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("option", OPTIONS)
def test_options_declared_mask_only_leave_the_tracked_state_unchanged(option, tmp_path):
    """What makes leaving them out of the cache key safe: the dense phase records the same
    state whatever their value (checked by tracking with each changed value)."""
    node = _config(option, tmp_path)
    caps = _build(node, _model()).capabilities
    if not caps.tracks or caps.modifies_dense:
        return  # GMP's options all key its dense phase (modifies_dense)
    reference = _tracked_state(node)
    for key in caps.mask_options:
        other = _alternative(node.get(key)) if key in node else None
        if other is None or key in ("nm", "scope", "allocation", "compare"):
            other = {"nm": "2:4", "scope": "global", "allocation": "uniform", "compare": "current"}.get(key, other)
        if other is None or (key in node and node[key] == other):
            continue
        try:
            state = _tracked_state(dict(node, **{key: other}))
        except Exception:  # an invalid combination (e.g. compare=current with nm): nothing to compare
            continue
        assert _same_state(state, reference), f"pruner.{key} is declared mask-only but changes the tracked state"
