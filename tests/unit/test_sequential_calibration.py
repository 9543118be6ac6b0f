"""The block-by-block pass of sequential Wanda and SparseGPT gives the masks and weights of the old
pass (the model run from the embedding up to each block), bit for bit, on our GPT and on tiny
Hugging Face Llama, GPT-2 (Conv1D) and Gemma-3 (sliding-window layers get their own mask), and
runs each block a fixed number of times instead of once per later block."""

from __future__ import annotations

import pytest
import torch

from swp.models.structure import block_modules
from swp.pruners.calibration import block_groups, first_stack_recording
from swp.pruners.sparsegpt import SparseGPTPruner
from swp.pruners.wanda import WandaPruner
from swp.testing.sequential_reference import old_sequential_pass

LAYERS, BATCHES, VOCAB = 4, 3, 64

HF = {
    "llama": dict(model_type="llama", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2),
    "gpt2": dict(model_type="gpt2", n_embd=32, n_head=2),
    "gemma3": dict(model_type="gemma3_text", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=8, sliding_window=4,
                   layer_types=["sliding_attention", "full_attention"] * (LAYERS // 2)),
}


def _build(family: str):
    """(model, batches, forward) for one family, the same weights on every call."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if family.startswith("gpt-"):
        from swp.models.gpt import GPT

        model = GPT(vocab_size=VOCAB, block_size=16, n_layer=LAYERS, n_head=2, n_embd=32)
        data = [tuple(torch.randint(VOCAB, (2, 16), generator=g) for _ in range(2)) for _ in range(BATCHES)]
        precision = torch.bfloat16 if family == "gpt-bf16" else None

        def forward(m, batch):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision is not None):
                m(*batch)

        return model, data, forward
    transformers = pytest.importorskip("transformers")
    fields = dict(HF[family.split("-")[0]])
    depth = {"n_layer" if family == "gpt2" else "num_hidden_layers": LAYERS}
    config = transformers.AutoConfig.for_model(fields.pop("model_type"), vocab_size=VOCAB, bos_token_id=0,
                                               eos_token_id=0, max_position_embeddings=64, **depth, **fields)
    model = transformers.AutoModelForCausalLM.from_config(config)
    data = [torch.randint(VOCAB, (2, 16), generator=g) for _ in range(BATCHES)]
    cache = family.endswith("-cache")  # a key/value cache handed to every layer (transformers' default)

    def hf_forward(m, batch):
        with torch.no_grad():
            m(input_ids=batch) if cache else m(input_ids=batch, labels=batch, use_cache=False)

    return model, data, hf_forward


PRUNERS = {
    "wanda": (WandaPruner, {}),
    "wanda-2:4": (WandaPruner, {"nm": "2:4"}),
    "sparsegpt": (SparseGPTPruner, {"blocksize": 16}),
    "sparsegpt-2:4": (SparseGPTPruner, {"blocksize": 16, "nm": "2:4"}),
}
FAMILIES = ["gpt-fp32", "gpt-bf16", "llama", "llama-cache", "gpt2", "gemma3"]


def _prune(family: str, pruner_name: str, old: bool):
    """Prunes a fresh model to 50%; returns its masks, weights, Wanda norms, tokens and block runs."""
    model, data, forward = _build(family)
    cls, kw = PRUNERS[pruner_name]
    pruner = cls(model, calibration_batches=BATCHES, **kw)
    runs = [0]
    for block in block_modules(model):
        block.register_forward_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))
    with old_sequential_pass() if old else torch.no_grad():
        model.eval()
        pruner.calibrate(model, data, forward)
        model.train()
        keep, _ = pruner.masks(pruner.rate_for_sparsity(0.5) if not pruner.nm else 0.0)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    return keep, weights, dict(getattr(pruner, "norms", {})), pruner.calibration_tokens, runs[0]


@pytest.mark.parametrize("pruner_name", list(PRUNERS))
@pytest.mark.parametrize("family", FAMILIES)
def test_block_by_block_gives_the_old_passes_masks_and_weights(family, pruner_name):
    keep, weights, norms, tokens, runs = _prune(family, pruner_name, old=False)
    keep_old, weights_old, norms_old, tokens_old, runs_old = _prune(family, pruner_name, old=True)
    assert set(keep) == set(keep_old) and all(torch.equal(keep[n], keep_old[n]) for n in keep), "masks"
    assert all(torch.equal(weights[n], weights_old[n]) for n in weights), "weights"
    assert set(norms) == set(norms_old) and all(torch.equal(norms[n], norms_old[n]) for n in norms), "norms"
    assert tokens == tokens_old == BATCHES * 2 * 16
    assert sum(int((~k).sum()) for k in keep.values()) == sum(k.numel() for k in keep.values()) // 2
    # held at a bit a weight while the pass runs (a byte a weight outgrew the peer's working set)
    assert keep.nbytes() == sum(-(-k.numel() // 8) for k in keep.values())
    n = LAYERS
    # Recording (stops before the last block), measuring, feeding the next; Wanda at a target
    # needs no dense pass of its own (the old pass ran from the embedding up to each block).
    assert (runs, runs_old) == (((n - 1) + n + (n - 1)) * BATCHES, n * (n + 1) // 2 * BATCHES)


def test_gemma3_layers_are_replayed_with_their_own_masks():
    """The recording keeps each layer's own arguments: Gemma-3's sliding-window layers get another
    attention mask than its full-attention layers, so one set of arguments for all would be wrong."""
    model, data, forward = _build("gemma3")
    pruner = WandaPruner(model)
    with first_stack_recording(model, pruner.params) as recorded:
        model.eval()
        forward(model, data[0])
    masks = [recorded.calls[f"model.layers.{i}"][0][1]["attention_mask"] for i in range(LAYERS)]
    assert masks[0] is masks[2] and masks[1] is masks[3] and masks[0] is not masks[1]
    assert (masks[0] is None) != (masks[1] is None) or not torch.equal(masks[0], masks[1])


def test_groups_follow_the_declared_blocks():
    model, _, _ = _build("llama")
    pruner = WandaPruner(model, include=[r"layers\.[12]\."])  # blocks 0 and 3 hold nothing: trimmed away
    stacks, rest = block_groups(model, pruner.params)
    assert [[path for path, _ in stack] for stack in stacks] == [["model.layers.1", "model.layers.2"]]
    assert [len(members) for _, members in stacks[0]] == [7, 7] and rest == []
