"""Train once, prune many: a reused dense phase gives results identical to training it."""

from __future__ import annotations

import json
import threading
import time

import torch
from test_resume import _assert_same, _outcome
from torch import nn

from swp.infra.dense_cache import DenseCache, dense_key_material, tracking_spec
from swp.training.schedule import Schedule
from train import run

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


def _key(**change):
    base = dict(model={"n_embd": 32}, dataset={"batch_size": 8}, schedule=Schedule(), seed=1, precision="fp32",
                device=torch.device("cpu"), threads=1)
    return DenseCache("/c", dense_key_material(**(base | change)), None).folder.name


def test_key_changes_with_what_determines_the_dense_phase_only():
    base = _key()
    for change in (dict(seed=2), dict(model={"n_embd": 64}), dict(dataset={"batch_size": 16}),
                   dict(schedule=Schedule(lr=2e-3)), dict(schedule=Schedule(train_steps=10)),
                   dict(precision="bf16"), dict(threads=2)):
        assert _key(**change) != base, change
    for same in (dict(schedule=Schedule(finetune_steps=7, finetune_lr=1e-5, eval_every=3, log_every=2, track_every=9)),):
        assert _key(**same) == base
    swp = {"_target_": "swp.methods.swp.SWPPruner", "_partial_": True, "window": None, "average_of": "magnitude",
           "compare": "importance", "scope": "layer", "include": None, "exclude": None}
    spec = tracking_spec(swp, True, 5)
    assert spec == tracking_spec(swp | {"compare": "current", "scope": "global"}, True, 5)  # used after tracking
    assert spec != tracking_spec(swp | {"window": 3}, True, 5) and spec != tracking_spec(swp, True, 10)
    assert tracking_spec(swp, False, 5) is None


def test_concurrent_jobs_train_the_dense_phase_once(tmp_path):
    model = nn.Linear(3, 2)
    cache = lambda: DenseCache(tmp_path, {"k": 1}, None)  # noqa: E731 (one per "job", as in a sweep)
    state = {"stage": "dense", "step": 0, "record": {}}
    trained, seen = [], []

    def job(name):
        with cache().reserve() as entry:
            if entry.hit is None:
                trained.append(name)
                time.sleep(0.3)  # the other job arrives while this one trains
                entry.publish(model, state)
            else:
                seen.append(name)

    threads = [threading.Thread(target=job, args=(n,)) for n in ("first", "second")]
    threads[0].start()
    time.sleep(0.05)
    threads[1].start()
    for t in threads:
        t.join()
    assert trained == ["first"] and seen == ["second"]
    manifest = json.loads((cache().entry_path / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"model.safetensors", "state.pt", "config.json", "key.json"}
