"""The constructor signature is the schema: every `_target_` in conf/ is annotated in a way the
validator understands, its defaults pass its own annotations, and building it directly (a library
user) refuses a bad value with the same one line as the command line."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal

import pytest
import torch
from torch import nn

from swp.config_types import Check, Range, check_value, describe, parameters, unpack
from swp.errors import ConfigError
from swp.settings import RunSettings
from swp.testing.config_cases import OPTIONS, bad_values, compose_option, first_checked, set_key, target_nodes
from swp.validation import locate, validate_resolved


def _where() -> dict[str, tuple]:
    """target name -> (group, option, dotted key of its node): where the config builds it."""
    found = {}
    for group, option in OPTIONS:
        raw = compose_option(group, option)
        for key, node in target_nodes({g: raw[g] for g in RunSettings.GROUPS if raw.get(g)}):
            found.setdefault(node["_target_"], (group, option, key))
    return found


WHERE = _where()
SETTINGS = [RunSettings] + [f.default_factory for f in fields(RunSettings) if f.default_factory is not MISSING]


def _understood(hint, where: str) -> None:
    """Fails unless every part of the annotation is one the checks read (numbers need a Range)."""
    base, marks, _ = unpack(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if base in (int, float):
        assert any(isinstance(m, Range) for m in marks), f"{where}: a number without a Range"
    elif base in (object, Any):
        assert any(isinstance(m, Check) for m in marks), f"{where}: object/Any without a Check"
    elif origin in (list, tuple, Sequence):
        for item in (a for a in args if a is not Ellipsis):
            _understood(item, f"{where}[]")
    elif origin in (typing.Union, type(int | None)):
        for alt in args:
            _understood(alt, where)
    else:
        assert base in (bool, str) or origin in (Literal, Mapping) or isinstance(base, type), f"{where}: {base!r}"
    assert " at 0x" not in describe(hint), f"{where}: {describe(hint)}"


@pytest.mark.parametrize("name", sorted(WHERE))
def test_every_target_in_conf_is_annotated(name):
    target = locate(name, name)
    params, extra = parameters(target)
    for p in params.values():
        assert p.hint is not None, f"{name}({p.name}) has no annotation: the validator cannot check it"
        if not p.runtime:
            _understood(p.hint, f"{name}({p.name})")
    assert extra is None or extra.runtime, f"{name} takes **{extra.name} not marked Runtime: any key would pass"


@pytest.mark.parametrize("target", SETTINGS, ids=lambda s: s.__name__)
def test_the_run_settings_are_annotated(target):
    for p in parameters(target)[0].values():
        assert p.hint is not None, p.name
        if not is_dataclass(unpack(p.hint)[0]):
            _understood(p.hint, f"{target.__name__}.{p.name}")


@pytest.mark.parametrize("name", sorted(WHERE))
def test_defaults_pass_their_own_annotations(name):
    for p in parameters(locate(name, name))[0].values():
        if not p.runtime and not p.required:
            check_value(p.name, p.default, p.hint)


def _call_with(target, params: dict, bad) -> None:
    """Calls the constructor as a library user would: required arguments as placeholders (the
    check is the constructor's first statement, so it never reaches them), one bad value."""
    kwargs = {p.name: None for p in params.values() if p.required}
    target(**kwargs | {first_checked(params).name: bad})


WITH_SETTINGS = [n for n in sorted(WHERE) if first_checked(parameters(locate(n, n))[0])]


@pytest.mark.parametrize("name", WITH_SETTINGS + [s.__name__ for s in SETTINGS])
def test_building_it_directly_refuses_like_the_command_line(name):
    """The library check and the validator's are one check: the same words, the same key."""
    target = next((s for s in SETTINGS if s.__name__ == name), None) or locate(name, name)
    params = parameters(target)[0]
    param = first_checked(params)
    for bad in bad_values(param.hint)[:4]:
        with pytest.raises(ConfigError) as library:
            _call_with(target, params, bad)
        if target in SETTINGS:
            key = {s: f.name for f in fields(RunSettings) for s in SETTINGS if f.default_factory is s}.get(target)
            raw, path = compose_option(*OPTIONS[0]), ((key + ".") if key else "") + param.name
        else:
            group, option, node_key = WHERE[name]
            raw, path = compose_option(group, option), f"{node_key}.{param.name}"
        with pytest.raises(ConfigError) as command_line:
            validate_resolved(set_key(raw, path, bad))
        assert str(library.value) == str(command_line.value)


def test_library_examples_from_the_issue():
    from swp.pruners.swp import SWPPruner
    from swp.training.schedule import Schedule

    with pytest.raises(ConfigError, match=r"^schedule\.lr must be a finite number in \(0, 1\] .*; got 2\.0$"):
        Schedule(lr=2.0)
    with pytest.raises(ConfigError, match=r"^pruner\.window must be an integer >= 0 or null; got -1$"):
        SWPPruner(nn.Sequential(nn.Linear(4, 4)), window=-1)
    with pytest.raises(ConfigError, match=r"^schedule\.min_lr must be <= schedule\.lr \(0\.001\); got 0\.01$"):
        Schedule(min_lr=0.01)
    with pytest.raises(ConfigError, match=r"^schedule\.train_steps must be an integer >= 0; got '3'$"):
        Schedule(train_steps="3")  # no coercion: '3' is not 3


def test_library_constructors_keep_their_own_checks():
    """For library users who never go through validate_config (each was a hand-written check)."""
    from swp.infra import runtime
    from swp.settings import CheckpointSettings
    from swp.training.schedule import Schedule

    with pytest.raises(ConfigError, match=r"prune_rate must be a finite number in \[0, 100\]"):
        RunSettings(prune_rate=-0.5)
    with pytest.raises(ConfigError, match=r"prune_rate must be a finite number in \[0, 100\]"):
        RunSettings(prune_rate=float("nan"))
    with pytest.raises(ConfigError, match=r"prune_rate must be a finite number in \[0, 100\]"):
        RunSettings(prune_rate="abc")
    with pytest.raises(ConfigError, match=r"target_sparsity must be a finite number in \[0, 1\) or null"):
        RunSettings(target_sparsity=1.0)
    with pytest.raises(ConfigError, match=r"target_sparsity must be a finite number in \[0, 1\) or null"):
        RunSettings(target_sparsity="half")
    with pytest.raises(ConfigError, match="device must be auto, cpu or cuda"):
        runtime.resolve_device("tpu")
    with pytest.raises(ConfigError, match="precision must be fp32 or bf16"):
        runtime.autocast_factory("fp8", None)
    with pytest.raises(ConfigError, match="schedule.track_every must be an integer >= 1"):
        Schedule(track_every=0)
    with pytest.raises(ConfigError, match="schedule.log_every must be an integer >= 1"):
        Schedule(log_every=0)
    with pytest.raises(ConfigError, match="schedule.train_steps must be an integer >= 0"):
        Schedule(train_steps=-5)
    with pytest.raises(ConfigError, match="checkpoint.keep must be an integer >= 1"):
        CheckpointSettings(keep=0)


def test_strict_types_without_coercion():
    """'3' is not 3, true is not 1, NaN and inf are not numbers, 2**63 does not fit."""
    count = parameters(RunSettings)[0]["seed"].hint
    for bad in ("3", True, 1.0, math.nan, 2**63, [3]):
        with pytest.raises(ConfigError, match="^seed must be an integer >= 0"):
            check_value("seed", bad, count)
    check_value("seed", 2**63 - 1, count)
    flag = parameters(RunSettings)[0]["progress"].hint
    for good in ("auto", True, False):
        check_value("progress", good, flag)
    for bad in (1, 0, "true"):
        with pytest.raises(ConfigError):
            check_value("progress", bad, flag)


def test_a_runtime_argument_is_the_launchers(tmp_path):
    """The pruner's model is not a config key, but the constructor still takes it."""
    from swp.pruners.simple import MagnitudePruner

    assert parameters(MagnitudePruner)[0]["model"].runtime
    pruner = MagnitudePruner(nn.Sequential(nn.Linear(4, 4)))
    assert list(pruner.params) == ["0.weight"] and torch.is_tensor(pruner.params["0.weight"])
