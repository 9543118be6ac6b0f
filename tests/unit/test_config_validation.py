"""Validation at the edge: every key of every option of every group walked through bad values
generated from its constructor's annotation (one test per dotted key, nothing listed by hand),
plus the issue's examples as real Hydra overrides, and your own classes."""

from __future__ import annotations

import sys
import textwrap

import pytest

from swp.errors import ConfigError
from swp.testing.config_cases import OPTIONS, bad_values, compose_option, set_key
from swp.testing.tiny import CONF, compose_cfg
from swp.validation import iter_fields, validate_config, validate_resolved

COMPOSED = {(g, o): compose_option(g, o) for g, o in OPTIONS}


def _keys() -> dict[str, list]:
    """dotted key -> [(group, option, annotation)]: every option of a key's own group, and the
    first composition for keys of the other groups and the top level (the same node each time)."""
    keys: dict[str, list] = {}
    for (group, option), raw in COMPOSED.items():
        for key, hint in iter_fields(raw):
            if bad_values(hint) and (key.split(".")[0] == group or key not in keys):
                keys.setdefault(key, []).append((group, option, hint))
    return keys


KEYS = _keys()


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_file_is_valid_as_shipped(group, option):
    validate_resolved(COMPOSED[(group, option)])


@pytest.mark.parametrize("experiment", sorted(f.stem for f in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_is_valid_as_shipped(experiment, tmp_path):
    validate_config(compose_cfg([f"experiment={experiment}"], tmp_path))


@pytest.mark.parametrize("key", sorted(KEYS))
def test_bad_values_are_refused_in_one_line_naming_the_key(key):
    """Every bad value of this key, in every option that has it: `<key> must be ...; got ...`."""
    failures = []
    for group, option, hint in KEYS[key]:
        for value in bad_values(hint):
            try:
                validate_resolved(set_key(COMPOSED[(group, option)], key, value))
                failures.append(f"{group}={option}: {key}={value!r} was accepted")
            except ConfigError as exc:
                message = str(exc)
                if "\n" in message or not message.startswith(key) or "; got " not in message:
                    failures.append(f"{group}={option}: {key}={value!r} gave {message!r}")
    assert not failures, "\n".join(failures)


def test_the_walk_reaches_every_group_and_many_keys():
    for group in ("model", "dataset", "pruner", "schedule", "logger", "energy", "export", "distributed",
                  "trajectories", "checkpoint", "dense_cache"):
        assert any(k.startswith(group + ".") for k in KEYS), group
    cases = sum(len(bad_values(h)) for uses in KEYS.values() for _, _, h in uses)
    assert len(KEYS) > 150 and cases > 2000, (len(KEYS), cases)


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
        # rules between two values, now checked before anything is built (they were the constructors')
        ("pruner=gmp", "pruner.final_sparsity must be a fraction in [0, 1): pruner=gmp needs a final sparsity"),
        ("pruner=gmp target_sparsity=0.5 pruner.initial_sparsity=0.6",
         "pruner.initial_sparsity must be <= pruner.final_sparsity (0.5); got 0.6"),
        ("pruner=gmp target_sparsity=0.5 pruner.start_step=2000",
         "pruner.start_step must be <= pruner.end_step (1500); got 2000"),
        ("pruner=wanda pruner.allocation=shared_rate", "pruner.sequential=true needs allocation=uniform, owl or nm"),
        ("pruner=sparsegpt pruner.nm=[2,4] pruner.blocksize=6", "pruner.blocksize must be a multiple of M=4"),
        ("pruner.compare=current pruner.nm=[2,4]", "pruner.compare=current with pruner.nm ignores the tracked"),
        ("model=tiny_vlm dataset=diamonds model.heads=3", "model.hidden must be a multiple of model.heads (3)"),
        ("model=tiny_vlm dataset=diamonds model.prompt=Price:", "model.prompt must be a text containing '{text}'"),
        ("model=hf_causal_lm dataset=hf_text model.config={model_type:gpt2}", "give exactly one of model.name_or_path"),
        ("dense_cache.dir=''", "dense_cache.dir must be a folder name when dense_cache.enabled=true; got ''"),
        # parameters the launcher passes are not settings
        ("+pruner.model=x", "pruner.model is passed at run time (the model to prune, built by the launcher)"),
        ("+model.vocab_size=65", "model.vocab_size is passed at run time (the task's vocabulary size)"),
        ("+energy.out_dir=x", "energy.out_dir is passed at run time (the run folder)"),
        ("+logger.out_dir=x", "logger.out_dir is not a setting of swp.logging.base.NullLogger (its settings: none)"),
        ("model._target_=swp.models.gpt.GTP", "model._target_ must name an importable class or function"),
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


def test_the_settings_come_back_typed(tmp_path):
    run = validate_config(compose_cfg(["prune_rate=2", "threads=1", "checkpoint.keep=3"], tmp_path))
    assert (run.prune_rate, run.threads, run.checkpoint.keep, run.dense_cache.dir) == (2, 1, 3, "outputs/dense_cache")
    with pytest.raises(AttributeError):
        run.seed = 1  # frozen: what was checked is what the run reads


def test_launch_reads_the_checked_settings(tmp_path):
    from swp.launch import check

    s = check(compose_cfg(["prune_rate=2", "target_sparsity=0", "checkpoint.keep=3", "device=cpu"], tmp_path))
    assert (s.prune_rate, s.target, s.checkpoint["keep"], str(s.device)) == (2.0, 0.0, 3, "cpu")
    assert isinstance(s.prune_rate, float) and isinstance(s.target, float)  # results.json records 2.0, as before


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    """A module of the user's own classes, importable as `my_parts` (as a real project's would be)."""
    (tmp_path / "my_parts.py").write_text(textwrap.dedent('''
        from typing import Annotated
        from swp.config_types import Range, Runtime

        class Annotated_Logger:
            def __init__(self, config: Annotated[dict, Runtime()], out_dir: Annotated[str, Runtime()],
                         every: Annotated[int, Range(1)] = 5, tag: str = "x"):
                pass

        class Plain_Logger:
            def __init__(self, config, out_dir, every=5):
                pass

        class Open_Logger:
            def __init__(self, **kwargs):
                pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_parts"
    sys.modules.pop("my_parts", None)


@pytest.mark.parametrize("cls, extra, message", [
    ("Annotated_Logger", ["+logger.every=0"], "logger.every must be an integer >= 1; got 0"),
    ("Annotated_Logger", ["+logger.tag=3"], "logger.tag must be a string; got 3"),
    ("Annotated_Logger", ["+logger.evry=3"], "logger.evry is not a setting of my_parts.Annotated_Logger"),
    ("Annotated_Logger", ["+logger.every=7"], None),
    ("Plain_Logger", ["+logger.every=-1"], None),  # not annotated: passed through unchecked
    ("Plain_Logger", ["+logger.evry=3"], "logger.evry is not a setting of my_parts.Plain_Logger (its settings: "
                                         "config, every, out_dir)"),
    ("Open_Logger", ["+logger.anything=-1"], None),  # **kwargs: any key is the class's business
])
def test_your_own_class_is_checked_by_its_signature(own_module, tmp_path, cls, extra, message):
    cfg = compose_cfg([f"logger._target_={own_module}.{cls}", *extra], tmp_path)
    if message is None:
        validate_config(cfg)
        return
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        validate_config(cfg)
