"""One source of defaults: an option file and its `_target_`'s constructor never disagree.

Every option of every group is composed as `python train.py <group>=<option>` would compose it.
For the options `conf/train.yaml` picks by default, and for every option of the groups whose
options are one class each (pruner, logger, energy, export), each value the file sets must equal the constructor's
default for that argument (or the argument has none, i.e. it is required): otherwise a library
user and a CLI user get different runs from the "same" defaults. Model, dataset and schedule options
configure one generic class for one model, data set or schedule (Phi-3-vision's `trust_remote_code`), so
only their default option is held to this. Values interpolated from elsewhere (`${seed}`) are
the other key's business.
"""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from swp.testing.tiny import CONF, compose_cfg

GROUPS = [p.name for p in sorted(CONF.iterdir()) if p.is_dir() and p.name not in ("experiment", "hydra")]
METHOD_GROUPS = ("pruner", "logger", "energy", "export")  # one class per option


def _options():
    defaults = {k: v for d in OmegaConf.load(CONF / "train.yaml").defaults if isinstance(d, dict) for k, v in d.items()}
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            target = OmegaConf.load(f).get("_target_")
            if target and (group in METHOD_GROUPS or defaults.get(group) == f.stem):
                yield pytest.param(group, f.stem, target, id=f"{group}={f.stem}")


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("group,option,target", list(_options()))
def test_option_values_equal_constructor_defaults(group, option, target, tmp_path):
    node = compose_cfg([f"{group}={option}"], tmp_path)[group]
    raw = OmegaConf.to_container(node, resolve=False)
    params = inspect.signature(get_object(target)).parameters
    disagree = {
        key: (value, params[key].default)
        for key, value in raw.items()
        if key in params and params[key].default is not inspect.Parameter.empty and not isinstance(value, dict)
        and not (isinstance(value, str) and value.startswith("${")) and _plain(value) != _plain(params[key].default)
    }
    assert not disagree, f"{group}/{option}.yaml vs {target} defaults (yaml, constructor): {disagree}"


def test_every_option_of_every_group_composes(tmp_path):
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            cfg = compose_cfg([f"{group}={f.stem}"], tmp_path)
            assert cfg[group] is not None, f"{group}={f.stem}"
