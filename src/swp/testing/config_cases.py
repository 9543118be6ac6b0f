"""Every option of every config group composed as the command line composes it, every ``_target_``
in it, and bad values generated from an annotation: what the validator's tests walk."""

from __future__ import annotations

import copy
import functools
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf

from swp.config_types import INT64, Device, Range, Regex, unpack
from swp.testing.tiny import CONF, compose_cfg

# Options that need a partner in another group to compose (an interpolation or a required key).
PARTNERS = {
    ("dataset", "hf_text"): ["model=hf_causal_lm"],
    ("dataset", "text_files"): ["dataset.text.paths=[a.txt]"],
    ("model", "hf_causal_lm"): ["dataset=hf_text"],
    ("model", "tiny_vlm"): ["dataset=diamonds"],
    ("model", "price_vlm"): ["dataset=diamonds"],
    ("model", "phi3_vision"): ["dataset=burberry"],
    ("model", "smollm2"): ["dataset=shakespeare_tokens"],
    ("dataset", "shakespeare_tokens"): ["model=smollm2"],
    ("pruner", "gmp"): ["target_sparsity=0.5"],
    ("pruner", "swp_gradual"): ["target_sparsity=0.5"],
    ("recipe", "gmp"): ["target_sparsity=0.5"],
    ("recipe", "swp_gradual"): ["target_sparsity=0.5"],
    ("recipe", "swp_regrow"): ["target_sparsity=0.5"],
    ("dataset", "c4"): ["model=smollm2"],
    ("dataset", "wikitext2"): ["model=smollm2"],
    ("zeroshot", "local"): ["zeroshot.tasks=[my_task]", "zeroshot.include_path=my_tasks"],
}
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


@functools.lru_cache(maxsize=None)
def compose_option(group: str, option: str, out: Path = Path("/tmp/swp-config-cases")) -> dict:
    """The resolved config of ``python train.py <group>=<option>`` (with its partner, if any);
    composed once per process and shared, so callers copy before changing it (`set_key` does)."""
    cfg = compose_cfg([f"{group}={option}", *PARTNERS.get((group, option), [])], out)
    return OmegaConf.to_container(cfg, resolve=True)


def set_key(raw: dict, key: str, value) -> dict:
    """A copy of `raw` with the dotted `key` set to `value`."""
    out = copy.deepcopy(raw)
    *path, leaf = key.split(".")
    node = out
    for p in path:
        node = node[p]
    node[leaf] = value
    return out


def target_nodes(node, prefix: str = ""):
    """(dotted key, node) of every ``_target_`` node in a resolved config."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield prefix.rstrip("."), node
        for key, value in node.items():
            yield from target_nodes(value, f"{prefix}{key}.")


def bad_values(hint) -> list:
    """Values an annotation must refuse: wrong types, NaN and inf, just outside its range, a
    string for a list, bool for int, null where null is not allowed, a broken regex."""
    base, marks, nullable = unpack(hint)
    rng = next((m for m in marks if isinstance(m, Range)), None)
    origin = typing.get_origin(base)
    if base is int:
        out = [1.5, math.nan, math.inf, "abc", "3", True, [1], 2**64, INT64 + 1] + _outside(rng, int)
    elif base is float:
        out = [math.nan, math.inf, -math.inf, "abc", "0.5", True, [1.0]] + _outside(rng, float)
    elif base is bool:
        out = ["maybe", "true", 2, 1, 0, [True]]
    elif origin is Literal:
        out = ["nope", 3, 1.5, ["x"]] + ([1, 0, "true"] if any(isinstance(o, bool) for o in typing.get_args(base))
                                         else [True])
    elif base is str:
        out = [3, ["x"], True] + (["nope", "gpu", "cuda:x", "cuda:"] if any(isinstance(m, Device) for m in marks)
                                  else [])
    elif origin in (list, tuple, Sequence):
        out = ["qkv", 3, {"a": 1}] + _bad_items(typing.get_args(base))
    elif origin is Mapping or base is dict:
        out = ["x", 3, [1]]
    elif origin in (typing.Union, type(int | None)):
        out = [1.5, True] if all(unpack(a)[0] is not float for a in typing.get_args(base)) else [True]
    elif isinstance(base, type) and base is not object:  # a nested node (_target_) or settings block
        out = [3, "abc", [1]]
    else:  # object with a Check: the named examples cover it
        return []
    return out + ([] if nullable else [None])


def _outside(rng: Range | None, kind: type) -> list:
    """Values just outside a range's ends (and -1, 0, 1e308 where they are outside)."""
    if rng is None:
        return []
    step = (lambda x, d: x + d) if kind is int else (lambda x, d: math.nextafter(x, d * math.inf))
    out = []
    if rng.lo != -math.inf:
        out.append(kind(rng.lo) if rng.lo_open else step(kind(rng.lo), -1))
    if rng.hi != math.inf:
        out.append(kind(rng.hi) if rng.hi_open else step(kind(rng.hi), 1))
    out += [v for v in (kind(-1), kind(0), 1e308 if kind is float else INT64) if not rng.holds(v)]
    return list(dict.fromkeys(out))


def _bad_items(items: tuple) -> list:
    """Lists with one bad item (or, for a fixed-length tuple, the wrong length)."""
    if not items:
        return []
    if items[-1] is not Ellipsis and len(items) > 1:  # tuple[X, X, X]
        return [[1] * (len(items) - 1), [1] * (len(items) + 1)] + [[*([8] * (len(items) - 1)), b]
                                                                  for b in bad_values(items[-1])[:4]]
    item = items[0]
    out = [[b] for b in bad_values(item)[:4]]
    if any(isinstance(m, Regex) for m in unpack(item)[1]):
        out.append(["("])
    return out


def first_checked(params: dict) -> Any:
    """The first parameter a config sets (not passed at run time) that has bad values (None: none)."""
    return next((p for p in params.values() if not p.runtime and p.hint is not None and bad_values(p.hint)), None)
