"""Validation at the edge: every numeric, list and enum-like key of every option of every group
walked through bad values, generated from the schemas (nothing listed by hand), plus the
issue's examples as real Hydra overrides, plus a sample through the real CLI in a subprocess."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from swp.errors import ConfigError
from swp.testing.tiny import CONF, ROOT, compose_cfg
from swp.validation import INT64, iter_fields, validate_config, validate_resolved

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
    ("zeroshot", "local"): ["zeroshot.tasks=[my_task]", "zeroshot.include_path=my_tasks"],
}
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


def _raw(group: str, option: str, tmp: Path) -> dict:
    cfg = compose_cfg([f"{group}={option}", *PARTNERS.get((group, option), [])], tmp)
    return OmegaConf.to_container(cfg, resolve=True)


def _set(raw: dict, key: str, value) -> dict:
    out = copy.deepcopy(raw)
    *path, leaf = key.split(".")
    node = out
    for p in path:
        node = node[p]
    node[leaf] = value
    return out


def _unwrap(hint):
    if typing.get_origin(hint) is typing.Union:
        return [a for a in typing.get_args(hint) if a is not type(None)][0], True
    return hint, False


def _outside(value, meta) -> bool:
    lo, hi, lo_open, hi_open = meta["span"]
    return not ((value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi))


def bad_values(hint, meta) -> list:
    """Values the schema must refuse for a field of this type and range."""
    base, _ = _unwrap(hint)
    if base is int:
        out = [1.5, math.nan, math.inf, "abc", True, [1], 2**64]
        out += [v for v in (-1, 0, INT64 + 1) if "span" in meta and _outside(v, meta)]
        return out
    if base is float:
        out = [math.nan, math.inf, -math.inf, "abc", True, [1.0]]
        out += [v for v in (-1.0, 0.0, 1e308) if "span" in meta and _outside(v, meta)]
        return out
    if base is bool:
        return ["maybe", 2, [True]]
    if typing.get_origin(base) in (list, typing.List):
        (item,) = typing.get_args(base)
        out = ["qkv", 3, {"a": 1}]
        if item is int:
            out += [["x"], [1.5], [True]] + ([[-1]] if "span" in meta and _outside(-1, meta) else [])
        return out
    if base is str and ("one_of" in meta or meta.get("device")):
        return ["nope", 3, ["cpu"]]
    if base is str:
        return [3, ["x"]]
    if "one_of" in meta:  # Any with choices (progress)
        return ["nope", 1, 0]
    return []


def _cases():
    tmp = Path("/tmp/swp-validation-cases")
    seen = set()
    for group, option in OPTIONS:
        raw = _raw(group, option, tmp)
        for key, hint, meta in iter_fields(raw):
            for value in bad_values(hint, meta):
                ident = (key, repr(value), option if key.split(".")[0] == group else "")
                if ident in seen:
                    continue
                seen.add(ident)
                yield pytest.param(group, option, key, value, id=f"{group}={option}:{key}={value!r}"[:120])


CASES = list(_cases())


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cfg")
    return {(g, o): _raw(g, o, tmp) for g, o in OPTIONS}


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_option_file_is_valid_as_shipped(group, option, composed):
    validate_resolved(composed[(group, option)])


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_number_has_a_declared_range(group, option, composed):
    """A new numeric key cannot slip in unchecked: its schema must say what range it allows."""
    for key, hint, meta in iter_fields(composed[(group, option)]):
        base, _ = _unwrap(hint)
        if base in (int, float):
            assert "span" in meta, f"{key} has no span(...) in swp.validation"


@pytest.mark.parametrize("group, option, key, value", CASES)
def test_bad_value_is_one_line_naming_the_key(group, option, key, value, composed):
    with pytest.raises(ConfigError) as info:
        validate_resolved(_set(composed[(group, option)], key, value))
    message = str(info.value)
    assert "\n" not in message and message.startswith(key) and "; got " in message, message


@pytest.mark.parametrize(
    "override, message",
    [
        # the examples, as Hydra parses them from a command line
        ("seed=-1", "seed must be an integer >= 0"),
        ("seed=1.5", "seed must be an integer >= 0"),
        ("threads=-2", "threads must be an integer in [1, 4096]"),
        ("threads=0", "threads must be an integer in [1, 4096] (null lets torch choose)"),
        ("schedule.lr=-1e-3", "schedule.lr must be a finite number in (0, 1]"),
        ("schedule.lr=nan", "schedule.lr must be a finite number in (0, 1]"),
        ("schedule.beta1=1.0", "schedule.beta1 must be a finite number in [0, 1)"),
        ("schedule.beta1=-0.1", "schedule.beta1 must be a finite number in [0, 1)"),
        ("dataset.eval_batches=0", "dataset.eval_batches must be an integer >= 1"),
        ("trajectories.show=0", "trajectories.show must be an integer >= 1"),
        ("pruner.state_device=gpu", "pruner.state_device must be a device name (cpu, cuda or cuda:N) or null"),
        ("dataset.val_fraction=1.5", "dataset.val_fraction must be a finite number in (0, 1)"),
        ("schedule.weight_decay=-0.1", "schedule.weight_decay must be a finite number >= 0"),
        ("pruner.include=qkv", "pruner.include must be a list of strings (e.g. [qkv]) or null; got 'qkv'"),
        ("pruner.exclude=head", "pruner.exclude must be a list of strings (e.g. [head]) or null"),
        ("prune_rate=1e308", "prune_rate must be a finite number in [0, 100]"),
        ("target_sparsity=0.9999999", "target_sparsity must be <= max_sparsity (0.99)"),
        ("target_sparsity=1.0", "target_sparsity must be a finite number in [0, 1)"),
        # more found by the walk or by hand
        ("prune_rate=abc", "prune_rate must be a finite number"),
        ("prune_rate=inf", "prune_rate must be a finite number"),
        ("target_sparsity=half", "target_sparsity must be a finite number in [0, 1) or null"),
        ("schedule.min_lr=0.1", "schedule.min_lr must be <= schedule.lr (0.001)"),
        ("schedule.weight_decay=2000", "schedule.weight_decay must be below 1 / schedule.lr"),
        ("model.n_head=3", "model.n_embd must be a multiple of model.n_head (3)"),
        ("pruner.nm=[4,2]", "pruner.nm must be null, true (2:4), 'N:M' or [N, M] with 0 < N < M"),
        ("pruner.include=['(']", "pruner.include[0] must be a valid regular expression"),
        ("+pruner.windw=3", "pruner.windw is not a setting of swp.pruners.swp.SWPPruner"),
        ("progress=1", "progress must be one of auto, true, false"),
        ("device=gpu", "device must be a device name (auto, cpu, cuda or cuda:N)"),
        ("dataset=diamonds", None),  # valid: the price pairing composes and passes
        (
            "dataset=diamonds dataset.examples.val_fraction=0.5 dataset.examples.test_fraction=0.5",
            "dataset.examples.val_fraction must leave training rows",
        ),
        ("model=price_vlm dataset=diamonds model.channels=[8,16]", "model.channels must be a list of 3 integers"),
        ("logger=wandb logger.mode=public", "logger.mode must be one of online, offline, disabled or null"),
        ("logger=wandb logger.tags=baseline", "logger.tags must be a list of strings (e.g. [baseline]) or null"),
        (
            "export=hf_pretrained export.subdir=../elsewhere",
            "export.subdir must be a folder name inside the run folder",
        ),
        ("energy.pue=0.5", "energy.pue must be a finite number in [1, 10]"),
        ("energy.country_iso_code=US", "energy.country_iso_code must be a 3-letter ISO code"),
        ("dataset=text_files", "required setting(s) not given: dataset.text.paths"),
        ("dataset=text_files dataset.text.paths=[]", "dataset.text.paths must be a non-empty list of text files"),
        ("dataset=text_files dataset.text.paths=a.txt", "dataset.text.paths must be a list of strings (e.g. [a.txt])"),
        ("checkpoint.every=-1", "checkpoint.every must be an integer >= 0"),
        ("checkpoint.keep=0", "checkpoint.keep must be an integer >= 1"),
        ("dense_cache.enabled=maybe", "dense_cache.enabled must be true or false"),
        ("max_sparsity=1.5", "max_sparsity must be a finite number in [0, 1]"),
    ],
)
def test_named_examples(override, message, tmp_path):
    cfg = compose_cfg(override.split(), tmp_path)
    if message is None:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_allowing_full_pruning(tmp_path):
    validate_config(compose_cfg(["target_sparsity=0.9999999", "max_sparsity=1.0"], tmp_path))


def test_unknown_target_is_left_to_its_constructor(tmp_path):
    cfg = compose_cfg(["logger._target_=my.own.Logger", "+logger.anything=-1"], tmp_path)
    validate_config(cfg)


# A small sample through the real CLI: exit 2, one line, no traceback, nothing trained.
CLI_SAMPLE = ["seed=-1", "pruner.include=qkv", "schedule.lr=nan", "dataset.val_fraction=1.5"]


@pytest.mark.parametrize("override", CLI_SAMPLE)
def test_cli_refuses_with_exit_2_and_trains_nothing(override, tmp_path):
    out = tmp_path / "run"
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            override,
            f"output_dir={out}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "energy=none",
            "dense_cache.enabled=false",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    key = override.split("=")[0]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith(f"error: {key} must be"), (
        proc.stderr
    )
    assert not (out / "results.json").exists() and not (out / "metrics.jsonl").exists()
    assert not (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
    assert not (out / "config.yaml").exists()  # refused before the run folder was opened
    if (out / "error.json").exists():  # the failure record a sweep summary lists
        assert json.loads((out / "error.json").read_text())["type"] == "ConfigError"


