"""Real Hugging Face models (tiny, random, built offline) through the real run(cfg)."""

from __future__ import annotations

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_cpu_state_scores_on_cpu_and_masks_land_beside_the_weights(assets):
    from swp.models.hf_causal_lm import hf_causal_lm
    from swp.pruners.swp import SWPPruner
    from swp.pruning.masks import MaskSet

    model = hf_causal_lm(name_or_path=assets["llama"], device="cuda").cuda()
    pruner = SWPPruner(model, state_device="cpu")
    pruner.observe()
    assert {v.device.type for v in pruner.importance().values()} == {"cpu"}
    masks = MaskSet(pruner.params, pruner.masks(1.0)[0])
    masks.apply()
    assert {k.device.type for k in masks.keep.values()} == {"cuda"}
    masks.check("after pruning")
