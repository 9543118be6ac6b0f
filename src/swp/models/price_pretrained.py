"""A pretrained vision-language model (Phi-3-vision, LLaVA, ...) that reads a price off its
last hidden state: the paper's second model, and the same code path on a tiny random VLM.

The public Phi-3-vision Burberry recipe generates "Price: <number>" as text and parses it.
Here a one-output regression head reads the final hidden state of the last prompt token
instead, so the model trains with the same task, loss and MAE as the CPU model and every
prediction is a number (no unparseable generations). The language-model head (vocabulary x
width, about 98M weights in Phi-3-vision) is dropped, as it is never used.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from swp.config_types import Check, Count, Options, Patterns, Range, Runtime, Seed, check_arguments, checked_by
from swp.errors import ConfigError
from swp.models.hf_causal_lm import weights_dtype
from swp.models.structure import ModelStructure, hugging_face_structure

Prompt = Annotated[str, Check(lambda prompt: "{text}" in prompt, "a text containing '{text}'")]
DataInfo = Annotated[int | None, Runtime("from the task")]
ImageSize = Annotated[int, Range(8, 4096)]  # pixels per side, as the price data sets'


def _llava_shape(given: Options) -> None:
    """The attention heads split the width evenly."""
    if given.hidden % given.heads:
        raise given.refuse("hidden", f"a multiple of {given.key('heads')} ({given.heads})")


class VLMPriceRegressor(nn.Module):
    """Prompt (image + text) -> backbone -> hidden state of the last real token -> price.

    Args:
        backbone: a transformers base model (no LM head) whose forward takes the processor's
            outputs and returns `last_hidden_state`.
        processor: the matching transformers processor (tokenizer + image processor).
        prompt: the chat prompt with the model's image tag and a `{text}` field.
        keep_dense: regexes of parameter names the pruners must leave dense (default config:
            the vision tower and projector, so only language-model Linear layers are pruned).
        gradient_checkpointing: recompute activations in the backward pass (memory for time).
    """

    def __init__(
        self,
        backbone: nn.Module,
        processor: Any,
        prompt: str,
        keep_dense: Sequence[str] = (),
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        if "{text}" not in prompt:
            raise ConfigError(f"model.prompt must contain '{{text}}', got {prompt!r}")
        self.backbone = backbone
        self.processor = processor  # not a Module: holds no weights
        self.prompt = prompt
        self.keep_dense = tuple(keep_dense)
        hidden = backbone.config.get_text_config().hidden_size
        self.head = nn.Linear(hidden, 1)  # float32 even when the backbone is bf16
        nn.init.zeros_(self.head.weight)  # starts at the mean log price
        nn.init.zeros_(self.head.bias)
        if gradient_checkpointing:
            backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        tok = processor.tokenizer
        self._seq_keys = set(tok.model_input_names)  # padded along the sequence; the rest concatenated
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    def get_output_embeddings(self) -> nn.Module:
        """The regression head (the name transformers gives a model's output layer)."""
        return self.head

    def structure(self) -> ModelStructure:
        """The backbone's own structure (its blocks and embeddings, read from the Hugging Face
        model), plus the head and every parameter `keep_dense` matches, kept dense."""
        inner = hugging_face_structure(self.backbone).prefixed("backbone.")
        kept = [n for n, _ in self.named_parameters(remove_duplicate=False)
                if any(re.search(q, n) for q in self.keep_dense)]
        return ModelStructure(inner.blocks, (*inner.dense, "head.weight", *kept), inner.layers)

    def encode(self, images: torch.Tensor, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Processes each example alone (Phi-3-vision's processor takes one prompt per call)
        and right-pads the sequences into one batch on the model's device."""
        from PIL import Image

        pics = images.permute(0, 2, 3, 1).cpu().numpy()
        feats = [
            self.processor(
                text=self.prompt.format(text=t), images=Image.fromarray(np.ascontiguousarray(p)), return_tensors="pt"
            )
            for p, t in zip(pics, texts)
        ]
        device, dtype = self.head.weight.device, self.backbone.dtype
        batch: dict[str, torch.Tensor] = {}
        for key in feats[0].keys():
            vals = [torch.as_tensor(f[key]) for f in feats]
            if key in self._seq_keys:
                length = max(v.shape[-1] for v in vals)
                fill = self._pad_id if key == "input_ids" else 0
                vals = [nn.functional.pad(v.reshape(1, -1), (0, length - v.shape[-1]), value=fill) for v in vals]
            t = torch.cat(vals, dim=0)
            batch[key] = t.to(device, dtype=dtype if t.is_floating_point() else None)
        return batch

    def forward(
        self, images: torch.Tensor, tokens: torch.Tensor | None = None, texts: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Predicted standardised log price, (B,), from uint8 images (B, 3, H, W) and raw texts.

        Args:
            images: uint8 RGB images.
            tokens: the task's word ids, unused (the backbone has its own tokenizer).
            texts: the product texts, placed in the prompt.
        """
        if texts is None:
            raise ValueError("VLMPriceRegressor needs the raw texts")
        inputs = self.encode(images, texts)
        hidden = self.backbone(**inputs, use_cache=False).last_hidden_state
        last = inputs["attention_mask"].sum(dim=1) - 1  # right padding: the last real token
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(pooled.float()).squeeze(-1)


def pretrained_vlm(
    name: str,
    prompt: Prompt,
    auto_class: str = "AutoModelForCausalLM",
    trust_remote_code: bool = False,
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16",
    attn_implementation: str | None = None,
    processor_kwargs: Mapping[str, Any] | None = None,
    keep_dense: Patterns = (),
    gradient_checkpointing: bool = True,
    vocab_size: DataInfo = None,
    image_size: DataInfo = None,
) -> VLMPriceRegressor:
    """Loads a Hub (or local) vision-language model and its processor into the price wrapper.

    Args:
        name: Hub id or local folder.
        prompt: see `VLMPriceRegressor`.
        auto_class: the transformers Auto class that loads the checkpoint.
        trust_remote_code: run modelling code shipped with the checkpoint (only for models
            transformers does not implement, such as Phi-3-vision).
        dtype: weight dtype, see `weights_dtype` (bfloat16 halves memory; the head stays float32).
        attn_implementation: e.g. "eager", "sdpa", "flash_attention_2"; None: the default.
        processor_kwargs: extra processor arguments (Phi-3-vision: num_crops).
        keep_dense, gradient_checkpointing: see `VLMPriceRegressor`.
        vocab_size, image_size: what the task offers every model; unused here because the
            processor brings its own tokenizer and image size.
    """
    check_arguments(pretrained_vlm, locals(), at="model")
    import transformers

    if not hasattr(transformers, auto_class):
        raise ConfigError(f"transformers has no {auto_class!r} (model.auto_class)")
    weights = weights_dtype(dtype, "auto")  # the LM path's parser: one list of dtypes, one error
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        processor = transformers.AutoProcessor.from_pretrained(
            name, trust_remote_code=trust_remote_code, **(processor_kwargs or {})
        )
        full = getattr(transformers, auto_class).from_pretrained(
            name, trust_remote_code=trust_remote_code, dtype=weights, **extra
        )
    except OSError as exc:  # missing weights offline, unknown name, no access
        raise ConfigError(f"cannot load {name!r}: {exc}") from exc
    # The base model alone: the LM head is never used by a regression head.
    return VLMPriceRegressor(full.base_model, processor, prompt, keep_dense, gradient_checkpointing)


@checked_by(_llava_shape)
def tiny_random_llava(
    image_size: ImageSize = 32,
    patch_size: Count = 8,
    hidden: Count = 32,
    layers: Count = 2,
    heads: Count = 2,
    seed: Seed = 0,
    prompt: Prompt = "<image>\n{text}\nPrice:",
    keep_dense: Patterns = ("vision_tower", "multi_modal_projector"),
    gradient_checkpointing: bool = True,
    vocab_size: DataInfo = None,
) -> VLMPriceRegressor:
    """A randomly initialised LLaVA (CLIP vision tower + Llama), built from a config with an
    in-memory character tokenizer: the CPU stand-in for Phi-3-vision, no download.

    Args:
        image_size: must equal the task's image size (LLaVA needs a fixed patch grid).
        patch_size, hidden, layers, heads: the tiny architecture.
        seed: seeds the random weights.
        prompt, keep_dense, gradient_checkpointing: see `VLMPriceRegressor`.
        vocab_size: the task's, unused (the tokenizer is the model's own). The launcher passes
            the task's image_size too, which replaces the config's.
    """
    check_arguments(tiny_random_llava, locals(), at="model")
    if image_size % patch_size:
        raise ConfigError(f"model.image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    from transformers import LlavaModel

    processor, config = _tiny_llava_parts(image_size, patch_size, hidden, layers, heads)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = LlavaModel(config)
    return VLMPriceRegressor(backbone, processor, prompt, keep_dense, gradient_checkpointing)


def _tiny_llava_parts(image_size: int, patch_size: int, hidden: int, layers: int, heads: int):
    """The tiny LLaVA's processor (a character tokenizer in memory, the PIL image processor) and config."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor

    try:  # the PIL image processor: the default one wants torchvision, which we don't install
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor

    tokenizer, vocab = _character_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=1,
            num_attention_heads=heads,
            image_size=image_size,
            patch_size=patch_size,
        ),
        text_config=LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            pad_token_id=vocab["<pad>"],
            max_position_embeddings=1024,
        ),
        image_token_id=vocab["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return processor, config


def _character_tokenizer():
    """A fast tokenizer of printable ASCII characters plus <pad>, <unk> and <image>, in memory."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<image>"]
    vocab = {t: i for i, t in enumerate(specials + [chr(c) for c in range(32, 127)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"<image>|."), behavior="isolated")  # characters
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>"), vocab
