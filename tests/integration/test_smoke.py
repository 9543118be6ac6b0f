"""The real run(cfg) on a tiny composed config."""

import json

from swp.cli import run


def test_tiny_swp_run_writes_results(tiny_cfg, tmp_path):
    results = run(tiny_cfg("pruner=swp", "prune_rate=0.6"))
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["pruner"] == "swp" and saved["tracking_points"] == 12
    assert 0.1 < results["sparsity"] < 0.6
