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
    # OWL's outlier ratios come from the summed norms: every rank allocates as one process.
    "magnitude-owl": ("magnitude", dict(allocation="owl", owl_m=1.5, owl_lambda=0.1)),
    "wanda-owl": ("wanda", dict(allocation="owl", owl_m=1.5, owl_lambda=0.1)),
    "sparsegpt-owl": ("sparsegpt", dict(blocksize=4, allocation="owl", owl_m=1.5, owl_lambda=0.1)),
    "swp-owl": ("swp", dict(allocation="owl", owl_m=1.5, owl_lambda=0.1)),
}


def _pruner(kind: str, model, **kw):
    from swp.pruners.simple import MagnitudePruner
    from swp.pruners.sparsegpt import SparseGPTPruner
    from swp.pruners.swp import SWPPruner
    from swp.pruners.wanda import WandaPruner

    cls = {"wanda": WandaPruner, "sparsegpt": SparseGPTPruner, "swp": SWPPruner, "magnitude": MagnitudePruner}[kind]
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
        "owl": (shared.owl.ratios, ref.owl.ratios, shared.owl.sparsities) if shared.owl is not None else None,
    }


def _worker(names: list[str]) -> dict:
    from swp.distributed.strategy import DDP

    DDP().setup(torch.device("cpu"))  # the process group a DDP run joins
    return {name: _case(*CASES[name]) for name in names}


@pytest.fixture(scope="module")
def ranks():
    return spawn(_worker, WORLD, list(CASES))


@pytest.mark.parametrize("name", list(CASES))
def test_calibrating_pruners_under_ddp_prune_as_one_process(ranks, name):
    for rank, out in enumerate(r[name] for r in ranks):
        print(f"{name} rank {rank}: norm error {out['norm_error']:.2e}, weight error {out['weight_error']:.2e}")
        assert out["masks_equal"], (name, rank)
        assert out["masks_agree_across_ranks"], (name, rank)
        assert out["tokens"][0] == out["tokens"][1] > 0, out["tokens"]  # the job's tokens, not this rank's
        assert out["norm_error"] < 1e-6  # float32 sums in another order
        assert out["weight_error"] < 1e-5  # SparseGPT reconstructs from the merged Hessian
        assert out["sparsity"] == pytest.approx(0.5, abs=0.01)
    if name in ("wanda", "wanda-sequential", "wanda-2:4", "swp-activation-aware"):
        assert ranks[0][name]["has_norms"]
    if name.endswith("-owl"):
        ratios, reference, sparsities = ranks[0][name]["owl"]
        assert ratios == reference and len(set(ratios)) == 2 and len(set(sparsities)) == 2
        assert ranks[1][name]["owl"] == ranks[0][name]["owl"]


def test_merged_hessian_is_the_hessian_of_all_samples():
    """H = sum_r n_r H_r / sum_r n_r, with the ranks' reduction played by hand in one process."""
    from swp.pruning.sparsegpt import add_hessian_batch_, merge_hessians_

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 5, 4, generator=g), torch.randn(1, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)]
    whole, n = torch.zeros(4, 4), 0
    for x in xs:
        n = add_hessian_batch_(whole, n, x)
    parts = []
    for chunk in (xs[:1], xs[1:]):  # "rank 0" saw 3 samples, "rank 1" 3 samples in two batches
        h, m = torch.zeros(4, 4), 0
        for x in chunk:
            m = add_hessian_batch_(h, m, x)
        parts.append((h, m))
    total_h = parts[0][0] * parts[0][1] + parts[1][0] * parts[1][1]
    total_n = parts[0][1] + parts[1][1]

    def fake_sum(t):  # what all_reduce(SUM) returns for the tensors merge_hessians_ sends, in order
        sent.append(t.clone())
        t.copy_(torch.tensor([float(total_n)], dtype=t.dtype) if t.numel() == 1 else total_h)
        return t

    sent = []
    h0, m0 = parts[0][0].clone(), parts[0][1]
    assert merge_hessians_(h0, m0, fake_sum) == n == 6
    assert torch.allclose(h0, whole, atol=1e-6)
    assert torch.equal(sent[1], parts[0][0] * 3)  # this rank sent n_r H_r
    h1 = parts[1][0].clone()
    assert merge_hessians_(h1, parts[1][1], lambda t: t) == 3 and torch.equal(h1, parts[1][0])  # one process


