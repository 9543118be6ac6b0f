"""Models declare their structure (blocks, dense weights, Linear layers and their input axis); the
selection, sequential calibration and FSDP units read it, and refuse in one line a model that
declares nothing where its blocks are needed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from swp.distributed.strategy import FSDP
from swp.errors import ConfigError
from swp.models.gpt import GPT
from swp.models.price_small import PriceVLM
from swp.models.structure import ModelStructure, UndeclaredStructure, block_modules, model_structure
from swp.pruners.select import input_feature_axes, prunable_parameters
from swp.pruners.sparsegpt import SparseGPTPruner
from swp.pruners.wanda import WandaPruner
from swp.testing.blocks import TwoBlocks, batches, forward


def _hf(family: str):
    from swp.models.hf_causal_lm import hf_causal_lm
    from swp.testing.hf_tiny import GPT2, LLAMA

    pytest.importorskip("transformers")
    return hf_causal_lm(config=LLAMA if family == "llama" else GPT2, vocab_size=50, device="cpu")


def test_our_models_declare_their_blocks_and_dense_weights():
    gpt = GPT(vocab_size=20, block_size=8, n_layer=3, n_head=2, n_embd=8)
    assert model_structure(gpt) == ModelStructure(("blocks.0", "blocks.1", "blocks.2"),
                                                  ("tok_emb.weight", "pos_emb.weight", "lm_head.weight"))
    assert block_modules(gpt) == list(gpt.blocks)
    assert not any(p is gpt.tok_emb.weight for p in prunable_parameters(gpt).values())  # the tied head
    price = PriceVLM(vocab_size=30)
    assert model_structure(price).blocks == () and "head.weight" not in prunable_parameters(price)
    assert block_modules(price) == []


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_hugging_face_models_are_read_from_themselves(family):
    model = _hf(family)
    s = model_structure(model)
    stack = "model.layers" if family == "llama" else "transformer.h"
    assert s.blocks == (f"{stack}.0", f"{stack}.1")
    embed = "model.embed_tokens.weight" if family == "llama" else "transformer.wte.weight"
    assert s.dense == ("lm_head.weight", embed)
    params = prunable_parameters(model)
    assert len(params) == (14 if family == "llama" else 8)  # 7 Linear per Llama layer; 4 Conv1D per GPT-2 block
    assert set(input_feature_axes(model, params).values()) == ({1} if family == "llama" else {0})
    # FSDP2 swaps a sharded module's class for a subclass named FSDP<Name>: still a block.
    layer = model.get_submodule(f"{stack}.1")
    layer.__class__ = type(f"FSDP{type(layer).__name__}", (type(layer),), {})
    assert model_structure(model).blocks == s.blocks


def test_a_hugging_face_model_naming_no_repeated_module_is_refused():
    model = _hf("llama")
    model._no_split_modules = None
    with pytest.raises(UndeclaredStructure, match=r"^LlamaForCausalLM lists no repeated module in _no_split_modules"):
        model_structure(model)


def test_the_vision_language_wrapper_has_two_stacks_and_keeps_its_tower_dense():
    pytest.importorskip("transformers")
    from swp.models.price_pretrained import tiny_random_llava

    model = tiny_random_llava(image_size=32)
    s = model_structure(model)
    assert s.blocks == ("backbone.vision_tower.encoder.layers.0", "backbone.language_model.layers.0",
                        "backbone.language_model.layers.1")
    assert "head.weight" in s.dense and "backbone.language_model.embed_tokens.weight" in s.dense
    assert all(not n.startswith("backbone.vision_tower") for n in prunable_parameters(model))


class _Undeclared(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_a_model_that_declares_nothing_is_refused_where_blocks_are_needed():
    model = _Undeclared()
    assert list(prunable_parameters(model)) == ["layers.0.weight", "layers.1.weight"]  # plain: every nn.Linear
    WandaPruner(model, sequential=False, allocation="shared_rate")  # needs no blocks
    line = r"^_Undeclared declares no structure \(its blocks are unknown\): give it a structure\(\) method"
    for build in (lambda: WandaPruner(model), lambda: SparseGPTPruner(model), lambda: block_modules(model)):
        with pytest.raises(UndeclaredStructure, match=line):
            build()


def test_blocks_that_do_not_feed_each_other_are_refused_in_one_line():
    """The residual added outside the declared blocks: replaying them on each other's outputs
    would be wrong, and the recording sees it (the next block's input is not the last output)."""

    class OutsideResidual(TwoBlocks):
        def forward(self, x):
            for b in self.blocks:
                x = x + b(x)
            return x

    model = OutsideResidual()
    pruner = SparseGPTPruner(model, blocksize=4)
    pruner.calibrate(model, batches(), forward)
    with pytest.raises(ConfigError, match=r"^sequential calibration needs each block to take the previous one's "
                                          r"output, but blocks.1 does not take blocks.0's"):
        pruner.masks(pruner.rate_for_sparsity(0.5))


def test_fsdp_units_are_the_declared_blocks_or_matching_paths_and_refused_when_none():
    model = _hf("llama")
    assert FSDP().unit_paths(model) == ["model.layers.0", "model.layers.1"]
    assert FSDP(units=[r"model\.layers\.\d+\.mlp"]).unit_paths(model) == ["model.layers.0.mlp", "model.layers.1.mlp"]
    with pytest.raises(ConfigError, match=r"^distributed.units=\['Block'\] matched no module of LlamaForCausalLM"):
        FSDP(units=["Block"]).unit_paths(model)
    with pytest.raises(ConfigError, match=r"^distributed.units=auto matched no module of PriceVLM"):
        FSDP().unit_paths(PriceVLM(vocab_size=30))
    with pytest.raises(ConfigError, match=r"^distributed.units=auto needs the model's blocks: _Undeclared declares"):
        FSDP().unit_paths(_Undeclared())


@pytest.mark.parametrize("units,ok", [("auto", True), (["model\\.layers\\.\\d+"], True), ("Block", False),
                                      ([], False), (["("], False), ([3], False)],
                         ids=["auto", "regex-list", "a-bare-name", "empty", "bad-regex", "not-a-string"])
def test_fsdp_units_setting_is_checked_before_anything_runs(tmp_path, units, ok):
    from omegaconf import OmegaConf

    from swp.launch import check
    from swp.testing.tiny import compose_cfg

    cfg = compose_cfg(["distributed=fsdp"], tmp_path)
    cfg.distributed.units = OmegaConf.create({"u": units}).u if isinstance(units, list) else units
    if ok:
        check(cfg)
    else:
        with pytest.raises(ConfigError, match=r"^distributed\.units must be"):
            check(cfg)


def test_wanda_records_the_first_blocks_inputs_in_its_dense_pass():
    """Sequential Wanda runs the model once per calibration batch (the dense pass, which also
    records the first block's inputs), then only blocks."""
    model = TwoBlocks()
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    pruner = WandaPruner(model)
    data = batches()
    pruner.calibrate(model, data, forward)
    pruner.masks(pruner.rate_for_sparsity(0.5))
    assert len(calls) == len(data)
    assert torch.equal(pruner.params["blocks.0.0.weight"] == 0, ~pruner._done[1]["blocks.0.0.weight"])
