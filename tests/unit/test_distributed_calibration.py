"""The calibrating pruners under DDP (gloo, 2 processes): each rank calibrates on its slice of the
calibration batches, the statistics are summed over the ranks, and every rank prunes exactly as
one process that saw all the batches.

The one-process reference is computed inside each rank on a copy of the model with the whole
batches, so nothing is written and the comparison needs no second launch.
"""

from __future__ import annotations

import pytest
import torch

from swp.distributed.launch import spawn

WORLD = 2

CASES = {
    "wanda": ("wanda", dict(sequential=False, allocation="shared_rate")),
    "wanda-sequential": ("wanda", dict(sequential=True, allocation="uniform")),
    "wanda-2:4": ("wanda", dict(sequential=True, nm="2:4")),
    "sparsegpt": ("sparsegpt", dict(blocksize=4)),
    "swp-activation-aware": ("swp", dict(activation_aware=True, compare="current")),
}


def _pruner(kind: str, model, **kw):
    from swp.pruners.sparsegpt import SparseGPTPruner
    from swp.pruners.swp import SWPPruner
    from swp.pruners.wanda import WandaPruner

    cls = {"wanda": WandaPruner, "sparsegpt": SparseGPTPruner, "swp": SWPPruner}[kind]
    pruner = cls(model, **kw)
    if kind == "swp":
        pruner.observe()  # one tracking point: the scores exist
    return pruner


def _case(kind: str, kw: dict) -> dict:
    import torch.distributed as dist

    from swp.distributed import env
    from swp.testing.blocks import TwoBlocks, batches, forward

    rank, world = dist.get_rank(), dist.get_world_size()
    data = batches(n=3)  # 3 batches of 4 sequences: each rank takes 2 rows of every one
    mine = [b[rank * 2:(rank + 1) * 2] for b in data]
    one, ddp = TwoBlocks(), TwoBlocks()  # the same seeded weights
    ref, shared = _pruner(kind, one, **kw), _pruner(kind, ddp, **kw)
    ref.calibrate(one, data, forward)
    shared.calibrate(ddp, mine, forward, env.sum_over_ranks)
    rate = ref.rate_for_sparsity(0.5) if not ref.nm else 0.0
    keep_ref, _ = ref.masks(rate)
    keep, _ = shared.masks(shared.rate_for_sparsity(0.5) if not shared.nm else 0.0)
    norms_ref = getattr(ref, "norms", None) or getattr(ref, "activation_norms", None) or {}
    norms = getattr(shared, "norms", None) or getattr(shared, "activation_norms", None) or {}
    gathered = [None] * world
    dist.all_gather_object(gathered, {n: k.clone() for n, k in keep.items()})
    return {
        "masks_equal": all(torch.equal(keep[n], keep_ref[n]) for n in keep_ref),
        "masks_agree_across_ranks": all(torch.equal(g[n], keep[n]) for g in gathered for n in keep),
        "norm_error": max((float((norms[n] - norms_ref[n]).abs().max() / norms_ref[n].abs().max()) for n in norms_ref),
                          default=0.0),
        "has_norms": bool(norms_ref) and set(norms) == set(norms_ref),
        "weight_error": max(float((a - b).detach().abs().max()) for a, b in zip(ddp.parameters(), one.parameters())),
        "tokens": (shared.calibration_tokens, ref.calibration_tokens),
        "sparsity": float(sum((~k).sum() for k in keep.values()) / sum(k.numel() for k in keep.values())),
    }


def _worker(names: list[str]) -> dict:
    from swp.distributed.strategy import DDP

    DDP().setup(torch.device("cpu"))  # the process group a DDP run joins
    return {name: _case(*CASES[name]) for name in names}


@pytest.fixture(scope="module")
def ranks():
    return spawn(_worker, WORLD, list(CASES))


def test_calibration_under_fsdp_is_refused_in_one_line_and_allowed_under_ddp():
    from swp.distributed.strategy import DDP, FSDP
    from swp.errors import ConfigError
    from swp.pruners.wanda import WandaPruner
    from swp.testing.blocks import TwoBlocks

    pruner = WandaPruner(TwoBlocks())
    DDP().check_pruner("WandaPruner", pruner.capabilities)  # no error: DDP reduces the statistics
    refused = r"^pruner WandaPruner \(calibration\) is not supported under distributed=fsdp"
    with pytest.raises(ConfigError, match=refused):
        FSDP().check_pruner("WandaPruner", pruner.capabilities)
