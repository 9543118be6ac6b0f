"""Train once, prune many: a reused dense phase gives results identical to training it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from swp.cli import run
from swp.launch import build_parts, check, dense_cache
from swp.testing.outcome import assert_same_outcome as _assert_same
from swp.testing.outcome import run_outcome as _outcome
from swp.testing.tiny import TINY, compose_cfg

SHORT = ("schedule.train_steps=30", "schedule.finetune_steps=10")


def test_reused_dense_phase_gives_identical_results(tiny_cfg, tmp_path, capsys):
    cache = ("dense_cache.enabled=true", f"dense_cache.dir={tmp_path / 'cache'}")

    def go(out, *overrides):
        return run(tiny_cfg(*SHORT, *overrides, out=out))

    first = go("a", *cache, "target_sparsity=0.3")
    assert first["dense_cache"] == "miss"
    hit = go("b", *cache, "target_sparsity=0.5")
    assert hit["dense_cache"] == "hit" and hit["tracking_points"] == first["tracking_points"] == 6
    plain = go("c", "target_sparsity=0.5")
    assert plain["dense_cache"] == "off"
    _assert_same(_drop_cache_field(_outcome(tmp_path / "b")), _drop_cache_field(_outcome(tmp_path / "c")))

    # A damaged entry is reported and rebuilt, never used.
    (entry,) = (tmp_path / "cache").glob("*/track-*[!k]")
    with open(entry / "model.safetensors", "r+b") as f:
        f.truncate(64)
    capsys.readouterr()
    rebuilt = go("d", *cache, "target_sparsity=0.5")
    assert rebuilt["dense_cache"] == "miss" and "dense cache entry is damaged" in capsys.readouterr().err
    _assert_same(_drop_cache_field(_outcome(tmp_path / "d")), _drop_cache_field(_outcome(tmp_path / "c")))

    # A pruner that tracks nothing reuses the tracked entry (observing never moves a weight).
    magnitude = go("e", *cache, "target_sparsity=0.5", "pruner=magnitude")
    assert magnitude["dense_cache"] == "hit" and not any((tmp_path / "cache").glob("*/untracked"))
    go("f", "target_sparsity=0.5", "pruner=magnitude")
    _assert_same(_drop_cache_field(_outcome(tmp_path / "e")), _drop_cache_field(_outcome(tmp_path / "f")))


def _drop_cache_field(outcome):
    figures, *rest = outcome
    return {k: v for k, v in figures.items() if k != "dense_cache"}, *rest


def _keys(tmp_path, *overrides):
    """(dense key, tracking entry) of the composed run config, as the launcher derives them."""
    cfg = compose_cfg(TINY + ["dense_cache.enabled=true", f"dense_cache.dir={tmp_path}", *overrides], tmp_path / "run")
    settings = check(cfg)
    parts = build_parts(cfg, settings)
    cache = dense_cache(cfg, OmegaConf.to_container(cfg, resolve=True), parts, settings.device, tmp_path / "run")
    return cache.folder.name, cache.entry_path.name


# Everything the dense stage's files depend on: the model, the data, the schedule's dense fields,
# seed, precision, threads, the trajectory sample, and (tracking pruners) the tracking options.
CHANGES_DENSE = [
    "model.n_embd=64", "dataset.batch_size=4", "dataset.text.max_chars=150000", "schedule.lr=2e-3",
    "schedule.train_steps=50", "schedule.warmup_steps=3", "schedule.weight_decay=0.05", "schedule.beta2=0.95",
    "schedule.grad_clip=0.5", "schedule.track_every=6", "schedule.eval_every=7", "schedule.log_every=3",
    "+schedule.eval_initial=true", "seed=2", "precision=bf16", "threads=2", "trajectories.per_tensor=8",
    "pruner.include=[attn]",
]
CHANGES_TRACKING = ["pruner.window=3", "pruner.average_of=signed", "pruner.state_device=cpu"]
# What only shapes the masks, the fine-tune or the reporting never changes the key.
SAME = [
    "prune_rate=0.3", "target_sparsity=0.5", "pruner.scope=global", "pruner.compare=current", "pruner.nm=[2,4]",
    "schedule.finetune_steps=7", "schedule.finetune_lr=1e-4", "schedule.finetune_warmup_steps=1",
    "schedule.finetune_min_lr=1e-6", "logger=wandb", "trajectories.show=3", "checkpoint.every=5",
    "energy=none", "progress=true",
]


def test_cache_key_is_derived_from_what_the_dense_stage_depends_on(tmp_path):
    base = _keys(tmp_path)
    for change in CHANGES_DENSE:
        assert _keys(tmp_path, change)[0] != base[0], change
    for change in CHANGES_TRACKING:
        key = _keys(tmp_path, change)
        assert key[0] == base[0] and key[1] != base[1], change
    for change in SAME:
        assert _keys(tmp_path, change) == base, change
    # A pruner that tracks nothing has one entry name for every option of its own.
    assert _keys(tmp_path, "pruner=magnitude")[1] == _keys(tmp_path, "pruner=random")[1] == "untracked"


# Options in which a job that finds a published entry can differ from the job that published it.
# With the expected lookup: options that change a file the dense stage writes must miss.
TAKERS = [
    (("pruner=magnitude",), "hit"),
    (("pruner=swp", "pruner.compare=current", "prune_rate=0.3"), "hit"),
    (("pruner=magnitude", "schedule.log_every=3"), "miss"),
    (("schedule.eval_every=7",), "miss"),
    (("pruner=random", "pruner.include=[attn]"), "miss"),
    (("pruner=magnitude", "schedule.track_every=6"), "miss"),
    (("pruner=swp", "trajectories.per_tensor=5"), "miss"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A cache holding the default SWP job's dense stage."""
    root = tmp_path_factory.mktemp("published")
    run(compose_cfg(TINY + list(SHORT) + ["dense_cache.enabled=true", f"dense_cache.dir={root / 'cache'}"],
                    root / "publisher"))
    return root / "cache"


@pytest.mark.parametrize("overrides,lookup", TAKERS, ids=[" ".join(o) for o, _ in TAKERS])
def test_a_cache_hit_is_indistinguishable_from_training_the_stage(tmp_path, published, overrides, lookup):
    """Whatever the taker's options, every file it writes equals a run of its own without the cache."""
    cached = run(compose_cfg(TINY + list(SHORT) + ["dense_cache.enabled=true", f"dense_cache.dir={published}",
                                                   *overrides], tmp_path / "cached"))
    run(compose_cfg(TINY + list(SHORT) + list(overrides), tmp_path / "plain"))
    assert cached["dense_cache"] == lookup
    _assert_same(_drop_cache_field(_outcome(tmp_path / "cached")), _drop_cache_field(_outcome(tmp_path / "plain")))
