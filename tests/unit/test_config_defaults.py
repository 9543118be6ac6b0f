"""One source of defaults: an option file and its `_target_`'s constructor never disagree.

Each `_target_` named in conf/ has one reference option file (the one train.yaml picks, the only
one naming it, or the one declared in REFERENCE); every value that file sets must equal the
constructor's default for that argument (or the argument has none, i.e. it is required):
otherwise a library user and a CLI user get different runs from the "same" defaults. The other
option files of a generic class (gpt_paper for GPT) are configurations of it, not its defaults.
A target whose only option files are such configurations is declared in NO_REFERENCE, with why.
Values interpolated from elsewhere (`${seed}`) are the other key's business. The top-level keys
of conf/train.yaml are held to `RunSettings` the same way.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, is_dataclass

import pytest
from omegaconf import OmegaConf

from swp.settings import RunSettings
from swp.testing.config_cases import PARTNERS
from swp.testing.tiny import CONF, compose_cfg
from swp.validation import locate

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra"))
DEFAULTS = {k: v for d in OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))["defaults"]
            if isinstance(d, dict) for k, v in d.items()}
REFERENCE = {  # targets named by several option files, none of them train.yaml's choice
    "swp.tasks.token_lm.TokenLMTask": "dataset/hf_text",
    "swp.tasks.price.PriceTask": "dataset/diamonds",
}
NO_REFERENCE = {
    "swp.models.hf_causal_lm.hf_causal_lm": "the builder takes exactly one source (name_or_path, package or config): "
                                            "hf_causal_lm.yaml's gpt2 and smollm2.yaml's package are two choices",
    "swp.models.price_pretrained.pretrained_vlm": "phi3_vision.yaml configures the generic loader for one checkpoint "
                                                  "(its trust_remote_code=true must not become the library default)",
    "swp.data.text.hf_text": "hf_chars.yaml picks WikiText-2; the reader's config stays null so local builders "
                             "(name=text data_files=[...]) work",
}


def _nodes(node, path: str = ""):
    """(path inside the option file, node) of every `_target_` node in it."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield path, node
        for key, value in node.items():
            yield from _nodes(value, f"{path}.{key}" if path else key)


def _uses() -> dict[str, list[tuple[str, str]]]:
    """target -> [(group/option, path in the file)] for every option file that sets its values."""
    uses: dict[str, list] = {}
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            for path, node in _nodes(OmegaConf.to_container(OmegaConf.load(f), resolve=False)):
                uses.setdefault(node["_target_"], []).append((f"{group}/{f.stem}", path))
    return uses


USES = _uses()


def _reference(target: str) -> tuple[str, str]:
    options = USES[target]
    chosen = REFERENCE.get(target) or next((o for o, _ in options if DEFAULTS.get(o.split("/")[0]) == o.split("/")[1]),
                                           options[0][0] if len({o for o, _ in options}) == 1 else None)
    assert chosen, f"{target} is named by {sorted({o for o, _ in options})}: declare its reference in REFERENCE"
    return next((o, p) for o, p in options if o == chosen)


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _disagreements(values: dict, defaults: dict) -> dict:
    return {
        key: (value, defaults[key]) for key, value in values.items()
        if key in defaults and defaults[key] is not inspect.Parameter.empty and not isinstance(value, dict)
        and not (isinstance(value, str) and (value.startswith("${") or value == "???"))
        and _plain(value) != _plain(defaults[key])
    }


@pytest.mark.parametrize("target", sorted(set(USES) - set(NO_REFERENCE)))
def test_option_values_equal_constructor_defaults(target):
    option, path = _reference(target)
    node = OmegaConf.to_container(OmegaConf.load(CONF / f"{option}.yaml"), resolve=False)
    for part in filter(None, path.split(".")):
        node = node[part]
    defaults = {n: p.default for n, p in inspect.signature(locate(target, target)).parameters.items()}
    disagree = _disagreements(node, defaults)
    assert not disagree, f"{option}.yaml{':' + path if path else ''} vs {target} defaults (yaml, code): {disagree}"


def test_targets_without_a_reference_are_named_in_conf():
    assert set(NO_REFERENCE) <= set(USES) and set(REFERENCE) <= set(USES)


@pytest.mark.parametrize("settings", [RunSettings] + [f.default_factory for f in fields(RunSettings)
                                                      if f.default_factory is not MISSING],
                         ids=lambda s: s.__name__)
def test_train_yaml_values_equal_run_settings_defaults(settings):
    train = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"), resolve=False)
    block = next((f.name for f in fields(RunSettings) if f.default_factory is settings), None)
    node = train[block] if block else {k: v for k, v in train.items() if k not in ("defaults", "hydra")}
    defaults = {f.name: (f.default if f.default is not MISSING else f.default_factory()) for f in fields(settings)}
    assert set(node) == set(defaults), "conf/train.yaml and RunSettings name different keys"
    disagree = {k: v for k, v in _disagreements(node, defaults).items() if not is_dataclass(v[1])}
    assert not disagree, f"conf/train.yaml vs {settings.__name__} (yaml, code): {disagree}"


def test_every_option_of_every_group_composes(tmp_path):
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            extra = PARTNERS.get((group, f.stem), [])
            cfg = compose_cfg([f"{group}={f.stem}", *extra], tmp_path)
            if f.read_text().startswith("# @package _global_"):  # a recipe: it sets other groups' keys
                continue
            assert cfg[group] is not None, f"{group}={f.stem}"
