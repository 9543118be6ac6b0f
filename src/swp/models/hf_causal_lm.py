"""Any Hugging Face causal language model, pretrained (Hub name or local folder) or from a config."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from swp.errors import ConfigError
from swp.infra.runtime import resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def weights_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on a GPU (half the memory of fp32, the dtype LLMs ship in) and
    float32 on a CPU (where bf16 weights lose small fine-tuning updates and gain little)."""
    if dtype == "auto":
        return torch.bfloat16 if resolve_device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def hf_causal_lm(
    name_or_path: str | None = None,
    config: Mapping[str, Any] | None = None,
    dtype: str = "auto",
    device: str = "auto",
    gradient_checkpointing: bool = False,
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str | None = None,
    vocab_size: int | None = None,
    seq_len: int | None = None,
):
    """Builds an ``AutoModelForCausalLM``.

    Args:
        name_or_path: a Hub name (``gpt2``, ``meta-llama/Llama-2-7b-hf``) or a local folder
            written by ``save_pretrained``; loads the pretrained weights.
        config: instead of ``name_or_path``, a dict with ``model_type`` and its config fields
            (``{model_type: llama, hidden_size: 64, ...}``): randomly initialised weights,
            for tests and from-scratch runs.
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU), ``float32``, ``bfloat16`` or ``float16``.
        device: the run's device setting, used only to resolve ``dtype=auto``.
        gradient_checkpointing: recompute activations in the backward pass (less memory,
            about a third more compute), for long sequences on large models.
        trust_remote_code: run model code shipped with a Hub repository; off unless asked,
            because that code runs with your permissions.
        revision: a Hub branch, tag or commit, for reproducible loads.
        attn_implementation: e.g. ``sdpa``, ``eager``, ``flash_attention_2``; None lets
            transformers choose.
        vocab_size: the tokenizer's number of ids (passed by the task). A config-built model
            gets it as its vocabulary size; a pretrained model must cover it.
        seq_len: the longest sequence the task feeds (passed by the task); must fit the
            model's position table where it has one.

    Raises:
        ConfigError: neither or both of name_or_path and config, a load failure, or a model
            whose embeddings are smaller than the tokenizer's vocabulary, or sequences longer than the
            model's positions.
    """
    if (name_or_path is None) == (config is None):
        raise ConfigError("give exactly one of model.name_or_path (pretrained) and model.config (random init)")
    import transformers  # imported here: the GPT path of the project needs none of it

    torch_dtype = weights_dtype(dtype, device)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if config is not None:
        fields = dict(config)
        model_type = fields.pop("model_type", None)
        if model_type is None:
            raise ConfigError("model.config needs a model_type (e.g. llama, gpt2, qwen2, mistral)")
        if vocab_size is not None:
            fields.setdefault("vocab_size", vocab_size)
        try:
            cfg = transformers.AutoConfig.for_model(model_type, **fields)
        except Exception as exc:  # unknown type or invalid fields; the user needs one line
            raise ConfigError(f"invalid model.config for {model_type!r}: {exc}") from exc
        model = transformers.AutoModelForCausalLM.from_config(
            cfg, dtype=torch_dtype, trust_remote_code=trust_remote_code, **extra
        )
    else:
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                name_or_path, dtype=torch_dtype, trust_remote_code=trust_remote_code, revision=revision, **extra
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model {name_or_path!r}: {str(exc).splitlines()[0]}") from exc
    rows = model.get_input_embeddings().num_embeddings
    if vocab_size is not None and rows < vocab_size:
        raise ConfigError(
            f"the model's embeddings have {rows} rows but the tokenizer has {vocab_size} ids: "
            "use the model's own tokenizer (dataset.tokenizer)"
        )
    positions = getattr(model.config, "max_position_embeddings", None)
    if seq_len is not None and positions is not None and seq_len > positions:
        raise ConfigError(
            f"the task feeds {seq_len} tokens but the model has {positions} positions: "
            "lower dataset.block_size / dataset.eval_seq_len"
        )
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model
