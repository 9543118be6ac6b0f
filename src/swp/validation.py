"""Every config value checked before anything is built or written ("validation at the edge").

`validate_config(cfg)` is the first thing a run does. The schema of every node is the signature
of the class or function its ``_target_`` names (`swp.config_types` says how it is annotated):
each key must be one of its parameters, each value what the annotation says (strict: '3' is not
3, true is not 1, NaN is not a number), then the target's cross-field rules run
(``check_options``, the same classmethod its constructor calls). The top-level keys are the
fields of `swp.settings.RunSettings`, which the check returns. A bad value raises
`swp.errors.ConfigError` with one line that starts with its dotted key::

    schedule.lr must be a finite number in (0, 1] (AdamW moves each weight by about lr per step); got nan

Parameters marked `Runtime` (the model a pruner prunes, the vocab_size a task gives its model,
the run folder) are passed by the launcher and refused as config keys. An option whose
``_target_`` is your own class is checked the same way: unknown keys are refused unless it takes
``**kwargs``, annotated parameters are checked, unannotated ones are passed through unchecked.
"""

from __future__ import annotations

from dataclasses import is_dataclass

from omegaconf import DictConfig, OmegaConf

from swp.config_types import Param, Runtime, check_rules, check_value, markers, parameters, unpack
from swp.errors import ConfigError
from swp.settings import RunSettings

HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")


def validate_config(cfg: DictConfig) -> RunSettings:
    """Checks every value of the composed run config; raises on the first bad one.

    Returns:
        The run-level settings (the top-level keys of conf/train.yaml), typed and checked.

    Raises:
        ConfigError: one line, ``<key> must be ...; got ...`` (or a missing / unresolvable key).
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"required setting(s) not given: {', '.join(missing)} (add e.g. {missing[0]}=... to the command)"
        )
    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation to a key that does not exist, a bad resolver
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the config cannot be resolved: {first}") from None
    return validate_resolved(raw)


def validate_resolved(raw: dict) -> RunSettings:
    """`validate_config` on the resolved config as plain containers (what tests walk)."""
    settings = {k: v for k, v in raw.items() if k != "hydra" and k not in RunSettings.GROUPS}
    values = check_node(RunSettings, settings, "", "conf/train.yaml")
    for group in RunSettings.GROUPS:
        if raw.get(group) is not None:
            check_option(raw[group], group)
    return build_settings(RunSettings, values)


def check_option(node, key: str) -> None:
    """Checks one group's option (or a nested instantiable node) by its ``_target_``."""
    if not isinstance(node, dict):
        raise ConfigError(f"{key} must be a config group option (a mapping with _target_); got {node!r}")
    name = node.get("_target_")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}._target_ must be the dotted name of a class or function; got {name!r}")
    for flag in ("_partial_", "_recursive_"):
        if flag in node and not isinstance(node[flag], bool):
            raise ConfigError(f"{key}.{flag} must be true or false; got {node[flag]!r}")
    check_node(locate(name, key), {k: v for k, v in node.items() if k not in HYDRA_KEYS}, key + ".", name)


def locate(name: str, key: str):
    """The class or function a ``_target_`` names (imported as Hydra will import it)."""
    from hydra._internal.utils import _locate

    try:
        target = _locate(name)
    except Exception as exc:  # ImportError, AttributeError, or the module's own failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{key}._target_ must name an importable class or function ({first}); got {name!r}") from None
    if not callable(target):
        raise ConfigError(f"{key}._target_ must name a class or function; got {name!r}")
    return target


def check_node(target, node: dict, prefix: str, name: str) -> dict:
    """Checks a node's keys against `target`'s signature; returns its config values (defaults
    filled in) after the target's cross-field rules passed."""
    params, extra = parameters(target)
    for key, value in node.items():
        param = params.get(key)
        if param is None and (extra is None or extra.runtime):
            known = ", ".join(sorted(n for n, p in params.items() if not p.runtime)) or "none"
            raise ConfigError(f"{prefix}{key} is not a setting of {name} (its settings: {known}); got {value!r}")
        if param is not None and param.runtime:
            what = next((f" ({m.what})" for m in markers(param.hint) if isinstance(m, Runtime) and m.what), "")
            raise ConfigError(f"{prefix}{key} is passed at run time{what}, not a setting of {name}; got {value!r}")
    values = {}
    for param in params.values():
        if param.runtime:
            continue
        if param.name in node:
            values[param.name] = check_entry(param, node[param.name], prefix + param.name)
        elif param.required and param.hint is not None:
            raise ConfigError(f"{prefix}{param.name} must be given ({name} has no default for it); got nothing")
        elif not param.required:
            values[param.name] = param.default
    check_rules(target, values, prefix)
    return values


def check_entry(param: Param, value, key: str):
    """One value: a nested ``_target_`` node, a nested settings block, or a checked leaf."""
    if isinstance(value, dict) and "_target_" in value:
        check_option(value, key)
        return value
    base = unpack(param.hint)[0] if param.hint is not None else None
    if is_dataclass(base) and isinstance(value, dict):
        return check_node(base, value, key + ".", key)
    if param.hint is not None:
        check_value(key, value, param.hint)
    return value


def build_settings(cls, values: dict):
    """The settings dataclass from checked values (nested blocks built as their own dataclass)."""
    fields = {}
    for name, value in values.items():
        base = unpack(parameters(cls)[0][name].hint)[0]
        fields[name] = build_settings(base, value) if is_dataclass(base) and isinstance(value, dict) else value
    return cls(**fields)


def iter_fields(raw: dict, target=RunSettings, prefix: str = ""):
    """Every checked leaf of a resolved config: (dotted key, annotation).

    Follows the same signatures as `validate_config` (nested options by their ``_target_``), so
    a test can walk every key of every option through bad values without listing them.
    """
    params, _ = parameters(target)
    for name, value in raw.items():
        key = prefix + name
        if target is RunSettings and name in RunSettings.GROUPS or isinstance(value, dict) and "_target_" in value:
            if isinstance(value, dict) and isinstance(value.get("_target_"), str):
                yield from iter_fields(value, locate(value["_target_"], key), key + ".")
            continue
        param = params.get(name)
        if param is None or param.runtime or param.hint is None:
            continue
        base = unpack(param.hint)[0]
        if is_dataclass(base) and isinstance(value, dict):
            yield from iter_fields(value, base, key + ".")
        else:
            yield key, param.hint
