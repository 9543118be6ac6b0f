"""Train once, prune many: a reused dense phase gives results identical to training it."""

from __future__ import annotations

import json
import threading
import time

from torch import nn

from swp.infra.dense_cache import DenseCache


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


