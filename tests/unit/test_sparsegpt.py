"""SparseGPT: the Hessian, the OBS reconstruction against its closed form, the error against
magnitude pruning, exact counts, N:M, the sequential block order and a pinned tiny run."""

import pytest
import torch
from torch import nn

from swp.pruners.sparsegpt import SparseGPTPruner
from swp.pruning.sparsegpt import add_hessian_batch_, sparsegpt_prune
from swp.testing.blocks import TwoBlocks, batches, forward


def correlated(d: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(16, d, generator=g)
    x = torch.randn(8, 64, d, generator=g) @ torch.randn(d, d, generator=g)
    h, n = torch.zeros(d, d), 0
    for b in x.split(2):
        n = add_hessian_batch_(h, n, b)
    return w, x.reshape(-1, d).t(), h


def test_hessian_is_two_over_samples_x_xt():
    w, x, h = correlated()
    assert torch.allclose(h, 2 / 8 * x @ x.t(), rtol=1e-4, atol=1e-2)


def test_reconstruction_equals_exact_obs_for_a_prefix_mask():
    # Pruning the first p inputs of every row: SparseGPT's column sweep is then the exact
    # optimum w'_K = w_K + H_KK^-1 H_KP w_P (each kept column is updated by every pruned one),
    # also across lazily updated blocks (blocksize 4 < p).
    w, _, h = correlated(d=12)
    keep = torch.ones_like(w, dtype=torch.bool)
    keep[:, :5] = False
    new, k, loss = sparsegpt_prune(w, h, mask=keep, blocksize=4, percdamp=0.0)
    P, K = slice(0, 5), slice(5, 12)
    ref = torch.zeros_like(w)
    ref[:, K] = w[:, K] + torch.linalg.solve(h[K, K], h[K, P] @ w[:, P].t()).t()
    assert torch.equal(k, keep)
    assert torch.allclose(new, ref, atol=1e-4)
    # The reported OBS loss is the layer's loss increase, 1/2 tr(dW H dW^T), for any mask too.
    delta = w - new
    assert loss == pytest.approx(0.5 * float((delta @ h * delta).sum()), rel=1e-4)
    new, _, loss = sparsegpt_prune(w, h, 0.5, blocksize=4, percdamp=0.0)
    delta = w - new
    assert loss == pytest.approx(0.5 * float((delta @ h * delta).sum()), rel=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_reconstruction_error_is_below_magnitude_pruning(seed):
    w, x, h = correlated(seed=seed)
    # Blocks much narrower than the layer, as in an LLM (128 of 4096 columns): each block's mask is
    # chosen after the earlier blocks' updates, which is where SparseGPT's choice pays off.
    new, keep, _ = sparsegpt_prune(w, h, 0.5, blocksize=8)
    magnitude = w.clone()
    magnitude.view(-1)[w.abs().flatten().argsort()[: w.numel() // 2]] = 0
    error = lambda v: float((w @ x - v @ x).norm())  # noqa: E731
    assert error(new) < 0.9 * error(magnitude)
    # Reconstructing magnitude's own mask also beats leaving the kept weights as they were.
    rebuilt, _, _ = sparsegpt_prune(w, h, mask=magnitude != 0)
    assert error(rebuilt) < error(magnitude)


@pytest.mark.parametrize("sparsity", [0.1, 0.37, 0.5, 0.8])
def test_exact_count_and_pruned_weights_are_zero(sparsity):
    w, _, h = correlated(d=40)
    new, keep, _ = sparsegpt_prune(w, h, sparsity, blocksize=16)
    assert int((~keep).sum()) == round(sparsity * w.numel())
    assert bool((new[~keep] == 0).all()) and not torch.equal(new[keep], w[keep])  # kept weights moved


def test_nm_keeps_n_of_every_m():
    w, _, h = correlated()
    new, keep, _ = sparsegpt_prune(w, h, nm=(2, 4), blocksize=8)
    assert (keep.reshape(-1, 4).sum(1) == 2).all() and bool((new[~keep] == 0).all())


def test_dead_inputs_are_zeroed_and_pruned_first():
    w, _, h = correlated(d=8)
    h[2, :] = h[:, 2] = 0  # input 2 was always zero
    new, keep, _ = sparsegpt_prune(w, h, 0.25, blocksize=8)
    assert not keep[:, 2].any() and bool((new[:, 2] == 0).all())


@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("nm", [None, (2, 4)])
@pytest.mark.parametrize("seed", [0, 1])
def test_overwriting_the_hessian_gives_the_same_pruning_and_the_copy_leaves_it_alone(seed, nm, dead):
    w, _, h = correlated(d=24, seed=seed)
    if dead:
        h[5, :] = h[:, 5] = 0
    given = h.clone()
    copied = sparsegpt_prune(w, h, 0.5, nm=nm, blocksize=8)
    assert torch.equal(h, given)  # the default works in a copy
    overwritten = sparsegpt_prune(w, h, 0.5, nm=nm, blocksize=8, overwrite_hessian=True)
    assert all(torch.equal(a, b) for a, b in zip(copied[:2], overwritten[:2])) and copied[2] == overwritten[2]
    assert not torch.equal(h, given)  # its storage held the work (the dampened inverse)


def test_pruner_is_sequential_and_runs_each_block_on_the_previous_ones_outputs():
    model = TwoBlocks()
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = batches()
    ran = {0: 0, 1: 0}
    for i in ran:
        model.blocks[i].register_forward_hook(lambda *_, i=i: ran.__setitem__(i, ran[i] + 1))
    pruner = SparseGPTPruner(model, blocksize=4)
    pruner.calibrate(model, data, forward)
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    # Block 0: in the recording forward (which stops before block 1), measured, then run pruned to
    # make block 1's inputs; block 1: measured only. The model never runs from the embedding again.
    assert ran == {0: 3 * len(data), 1: len(data)}
    assert pruner.calibration_tokens == 3 * 4 * 5

    # The same by hand: block 0 from dense inputs, block 1 from block 0's pruned outputs.
    ref = TwoBlocks()
    ref.load_state_dict(dense)
    for block in ref.blocks:
        seen = {i: [] for i in (0, 2)}
        hooks = [block[i].register_forward_pre_hook(lambda _m, a, i=i: seen[i].append(a[0])) for i in (0, 2)]
        for b in data:
            ref(b)
        for hk in hooks:
            hk.remove()
        for i in (0, 2):
            h, n = torch.zeros(8, 8), 0
            for x in seen[i]:
                n = add_hessian_batch_(h, n, x)
            new, _, _ = sparsegpt_prune(block[i].weight.detach(), h, 0.5, blocksize=4)
            with torch.no_grad():
                block[i].weight.copy_(new)
    for name, p in pruner.params.items():
        assert torch.allclose(p.detach(), ref.get_submodule(name.rsplit(".", 1)[0]).weight, atol=1e-6), name
        assert int((~keep[name]).sum()) == 32 and bool((p[~keep[name]] == 0).all())
    with pytest.raises(RuntimeError, match="another sparsity"):
        pruner.masks(pruner.rate_for_sparsity(0.25))


def test_pruner_handles_transposed_conv1d_weights():
    transformers = pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    from swp.models.structure import ModelStructure

    class ConvBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.blocks = nn.ModuleList(Conv1D(8, 8) for _ in range(2))  # weight (in, out)

        def structure(self):  # Conv1D layers: weight (in, out), inputs on axis 0. No blocks that feed
            return ModelStructure(blocks=(), layers=((Conv1D, 0),))  # each other (a ReLU sits between)

        def forward(self, x):
            for b in self.blocks:
                x = torch.relu(b(x))
            return x

    assert transformers is not None
    model = ConvBlocks()
    data = batches()
    w0 = model.blocks[0].weight.detach().clone()
    pruner = SparseGPTPruner(model, blocksize=4)
    pruner.calibrate(model, data, forward)
    keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
    h, n = torch.zeros(8, 8), 0
    for b in data:
        n = add_hessian_batch_(h, n, b)
    new, k, _ = sparsegpt_prune(w0.t(), h, 0.5, blocksize=4)
    assert torch.allclose(model.blocks[0].weight, new.t(), atol=1e-6) and torch.equal(keep["blocks.0.weight"], k.t())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_sequential_pruners_on_hugging_face_models(family):
    """Blocks are the decoder layers, found without model-family names; GPT-2's Conv1D too."""
    transformers = pytest.importorskip("transformers")
    from swp.pruners.calibration import sequential_blocks
    from swp.pruners.wanda import WandaPruner
    from swp.testing.hf_tiny import GPT2, LLAMA

    config = transformers.AutoConfig.for_model(**(LLAMA if family == "llama" else GPT2), vocab_size=100,
                                               bos_token_id=0, eos_token_id=0)
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, 100, (2, 16), generator=g) for _ in range(2)]

    def hf_forward(model, batch):
        with torch.no_grad():
            model(input_ids=batch)

    for cls in (SparseGPTPruner, WandaPruner):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
        pruner = cls(model)
        groups = sequential_blocks(model, pruner.params)
        assert [len(names) for _, names in groups] == ([7, 7] if family == "llama" else [4, 4])
        pruner.calibrate(model, data, hf_forward)
        keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5))
        assert all(int((~k).sum()) == k.numel() // 2 for k in keep.values()), cls
        assert pruner.calibration_tokens == 2 * 2 * 16
