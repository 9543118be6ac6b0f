"""The Phi-3-vision wrapper's code path, on a tiny random LLaVA built from a config (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swp.errors import ConfigError
from swp.models.price_pretrained import pretrained_vlm, tiny_random_llava
from swp.pruners.select import prunable_parameters


def _images(n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))


def test_padding_does_not_change_a_prediction():
    model = tiny_random_llava(image_size=32, seed=1).eval()
    torch.nn.init.normal_(model.head.weight)  # the head starts at zero; make the output depend on the input
    texts = ["a", "a much longer description of a stone, 1.01 carat"]
    with torch.no_grad():
        both = model(images=_images(2), texts=texts)
        alone = torch.stack([model(images=_images(2)[i : i + 1], texts=[texts[i]])[0] for i in range(2)])
    # The short prompt is right-padded in the batch; the price is read at its last real token.
    torch.testing.assert_close(both, alone, rtol=1e-4, atol=1e-5)
    assert both[0] != both[1]


def test_vision_tower_is_opt_in_by_patterns():
    dense_vision = prunable_parameters(tiny_random_llava(image_size=32))
    all_linear = prunable_parameters(tiny_random_llava(image_size=32, keep_dense=()))
    assert not any("vision_tower" in n or "multi_modal_projector" in n for n in dense_vision)
    assert any("vision_tower" in n for n in all_linear) and any("multi_modal_projector" in n for n in all_linear)
    assert "head.weight" not in all_linear
    only_vision = prunable_parameters(tiny_random_llava(image_size=32, keep_dense=()), include=["vision_tower"])
    assert only_vision and all("vision_tower" in n for n in only_vision)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        model = tiny_random_llava(image_size=32, seed=2, gradient_checkpointing=ckpt).train()
        torch.nn.init.constant_(model.head.weight, 0.1)
        model(images=_images(2, seed=3), texts=["x", "yy"]).sum().backward()
        grads.append(model.backbone.language_model.layers[0].mlp.up_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_pretrained_loader_on_a_saved_tiny_checkpoint(tmp_path):
    """phi3_vision's loader (Auto classes, dtype, base model without LM head), on a local folder."""
    from transformers import LlavaForConditionalGeneration

    tiny = tiny_random_llava(image_size=32)
    full = LlavaForConditionalGeneration(tiny.backbone.config)
    full.model.load_state_dict(tiny.backbone.state_dict())
    full.save_pretrained(tmp_path / "ckpt")
    tiny.processor.save_pretrained(tmp_path / "ckpt")
    model = pretrained_vlm(
        str(tmp_path / "ckpt"),
        prompt="<image>\n{text}",
        auto_class="AutoModelForImageTextToText",
        dtype="bfloat16",
        keep_dense=["vision_tower", "multi_modal_projector"],
        vocab_size=99,
        image_size=32,
    )
    assert model.backbone.dtype == torch.bfloat16 and model.head.weight.dtype == torch.float32
    assert not any("lm_head" in n for n, _ in model.named_parameters())
    w = "language_model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(model.backbone.get_parameter(w), tiny.backbone.get_parameter(w).bfloat16())
    out = model(images=_images(2), texts=["a", "bb"])
    assert out.shape == (2,) and torch.isfinite(out.float()).all()
    assert all(n.startswith("backbone.language_model.") for n in prunable_parameters(model))


def test_missing_weights_offline_are_a_config_error():
    with pytest.raises(ConfigError, match="cannot load"):
        pretrained_vlm("microsoft/Phi-3-vision-128k-instruct", prompt="<|image_1|>{text}", trust_remote_code=True)


