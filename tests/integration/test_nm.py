"""N:M sparsity: the pure mask rule on hand-made tensors, and the invariant after real runs."""

import json

import pytest
import torch

from swp.cli import run
from swp.errors import ConfigError
from swp.pruning.nm import nm_violations


@pytest.mark.parametrize("pruner", ["swp", "magnitude"])
def test_run_with_2_4_keeps_2_of_4_in_every_group_after_finetuning(tiny_cfg, tmp_path, pruner):
    from safetensors.torch import load_file

    results = run(tiny_cfg(f"pruner={pruner}", "pruner.nm=[2,4]", "prune_rate=5.0", "energy=none"))
    assert results["nm"] == "2:4" and results["sparsity"] == 0.5 and results["mask_sparsity"] == 0.5
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    masks = load_file(str(tmp_path / "run" / "masks.safetensors"))
    assert len(masks) == 8  # 2 layers x (qkv, proj, fc, fc_proj)
    for name, keep in masks.items():
        assert keep.view(-1, 4).sum(1).eq(2).all(), name  # the mask: exactly 2 per group
        assert nm_violations(weights[name], 2, 4) == 0, name  # the fine-tuned weights obey it
        assert torch.equal(weights[name] != 0, keep), name
        assert not torch.signbit(weights[name][~keep]).any(), name  # pruned weights are +0.0
    # prune_rate=5.0 would prune almost everything by Eq. 2: it is ignored, as documented.
    assert json.loads((tmp_path / "run" / "results.json").read_text())["prune_rate"] == 5.0


def test_nm_with_target_sparsity_is_a_config_error_before_training(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="cannot be combined"):
        run(tiny_cfg("pruner=swp", "pruner.nm=[2,4]", "target_sparsity=0.6", "energy=none"))
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained


def test_nm_on_a_width_that_does_not_divide_is_a_config_error(tiny_cfg):
    with pytest.raises(ConfigError, match="multiple of M=3"):
        run(tiny_cfg("pruner=magnitude", "pruner.nm=[1,3]", "energy=none"))


