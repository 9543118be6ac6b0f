"""Every config value checked before anything is built or written ("validation at the edge").

`validate_config(cfg)` is the first thing a run does. Each group's option is checked against a
schema chosen by its ``_target_``: a dataclass whose fields say the type, and whose field
metadata says the allowed range or choices; ``__post_init__`` holds the rules that involve two
fields (``min_lr <= lr``, ``val_fraction + test_fraction < 1``). A bad value raises
`swp.errors.ConfigError` with one line that starts with the key::

    schedule.lr must be a finite number in (0, 1]; got nan

The schemas are dataclasses that OmegaConf accepts as structured configs (a test builds
``OmegaConf.structured`` of each, so they can be registered in Hydra's ConfigStore later), but
the check itself does not merge through OmegaConf, for two reasons: OmegaConf coerces
(``'3'`` -> 3, ``'yes'`` -> True, ``2.0`` refused where an int is declared), so a value it accepts
can still reach the library uncoerced and wrong; and a merge of the whole run config cost about
0.5 s per run here. So the type, range and unknown-key pass is ours, strict and driven by the
schema's annotations and metadata, and building the dataclass runs its ``__post_init__``.
A value that passes reaches the library exactly as checked.

An option whose ``_target_`` has no schema here (your own class, e.g.
``logger._target_=my.Logger``) is not checked: its constructor owns its checks. Library
constructors keep their own checks for library users; these are the entrypoint's.

Adding a config key: add a field to its schema (the test that composes every option file fails
until you do), with `span` or `one_of` metadata for numbers and enum-like strings.
"""

from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from swp.errors import ConfigError

INT64 = 2**63 - 1  # the largest integer torch (and every counter below) can hold
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def span(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, why: str = "") -> dict:
    """Field metadata: the value must lie in [lo, hi] (or an open end)."""
    return {"span": (lo, hi, lo_open, hi_open), "why": why}


def one_of(*options, why: str = "") -> dict:
    """Field metadata: the value must be one of these (strings, or True/False for bools)."""
    return {"one_of": options, "why": why}


def _f(default=None, **meta):
    """A schema field with a plain default and metadata (lists get a factory)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


COUNT = span(1, INT64)  # >= 1
COUNT0 = span(0, INT64)  # >= 0
SEED = span(0, INT64, why="seeds are non-negative integers")
FRACTION_OPEN = span(0, 1, lo_open=True, hi_open=True)  # (0, 1)
PROB = span(0, 1, hi_open=True)  # [0, 1)
NESTED = {"nested": True}  # an instantiable sub-node validated by its own _target_
DEVICE_NAME = {"device": True}


def _key_err(key: str, must: str, value) -> ConfigError:
    return ConfigError(f"{key} must be {must}; got {value!r}")


# ---------------------------------------------------------------------------------------------
# Top level (conf/train.yaml)


@dataclass
class TrajectoriesSchema:
    per_tensor: int = _f(64, **COUNT0)
    show: int = _f(8, **COUNT)


@dataclass
class CheckpointSchema:
    enabled: bool = True
    every: int = _f(500, **COUNT0)
    keep: int = _f(2, **COUNT)
    keep_after_success: bool = False
    sharded: bool = False


@dataclass
class DenseCacheSchema:
    enabled: bool = True
    dir: str = "outputs/dense_cache"

    def __post_init__(self):
        if self.enabled and not self.dir.strip():
            raise _key_err("dir", "a folder name when dense_cache.enabled=true", self.dir)


@dataclass
class BudgetSchema:
    steps: int = _f(1000, **COUNT)
    scale: float = _f(1.0, **span(0, 1e6, lo_open=True))
    recovery: float = _f(0.25, **PROB)
    ramp_start: float = _f(0.25, **span(0, 1))
    mask_updates: int = _f(50, **COUNT)
    tracking_points: int = _f(100, **COUNT)
    eval_points: int = _f(8, **COUNT)
    warmup: float = _f(0.067, **PROB)


@dataclass
class TrainSchema:
    prune_rate: float = _f(
        0.6,
        **span(
            0, 100, why="above 100 std no weight of a real tensor survives; use target_sparsity for an exact fraction"
        ),
    )
    target_sparsity: Optional[float] = _f(None, **PROB)
    max_sparsity: float = _f(0.99, **span(0, 1))
    seed: int = _f(1337, **SEED)
    device: str = _f("auto", **DEVICE_NAME, auto=True)
    precision: str = _f("fp32", **one_of("fp32", "bf16"))
    threads: Optional[int] = _f(None, **span(1, 4096, why="null lets torch choose"))
    progress: Any = _f("auto", **one_of("auto", True, False))
    output_dir: Optional[str] = None
    resume: Optional[str] = None
    trajectories: TrajectoriesSchema = field(default_factory=TrajectoriesSchema)
    checkpoint: CheckpointSchema = field(default_factory=CheckpointSchema)
    dense_cache: DenseCacheSchema = field(default_factory=DenseCacheSchema)
    budget: BudgetSchema = field(default_factory=BudgetSchema)
    model: Any = _f(None, **NESTED)
    dataset: Any = _f(None, **NESTED)
    pruner: Any = _f(None, **NESTED)
    schedule: Any = _f(None, **NESTED)
    logger: Any = _f(None, **NESTED)
    export: Any = _f(None, **NESTED)
    energy: Any = _f(None, **NESTED)
    distributed: Any = _f(None, **NESTED)

    def __post_init__(self):
        if self.target_sparsity is not None and self.target_sparsity > self.max_sparsity:
            raise ConfigError(
                f"target_sparsity must be <= max_sparsity ({self.max_sparsity}), since pruning more than that "
                f"empties whole tensors; got {self.target_sparsity!r} (set max_sparsity=1.0 to allow it)"
            )


# ---------------------------------------------------------------------------------------------
# dataset


@dataclass
class ShakespeareTextSchema:
    genres: Optional[List[str]] = None
    max_chars: Optional[int] = _f(None, **COUNT)


@dataclass
class LocalTextSchema:
    paths: List[str] = _f([])
    max_chars: Optional[int] = _f(None, **COUNT)

    def __post_init__(self):
        if not self.paths:
            raise _key_err("paths", "a non-empty list of text files", self.paths)


@dataclass
class HFTextSchema:
    name: str = "Salesforce/wikitext"
    config: Optional[str] = None
    split: str = "train"
    column: str = "text"
    data_files: Any = None
    max_chars: Optional[int] = _f(None, **COUNT)


@dataclass
class CharLMSchema:
    text: Any = _f(None, **NESTED)
    block_size: int = _f(64, **COUNT)
    batch_size: int = _f(32, **COUNT)
    val_fraction: float = _f(0.1, **FRACTION_OPEN)
    eval_batches: int = _f(20, **COUNT)
    eval_seed: int = _f(1234, **SEED)


@dataclass
class TokenLMSchema:
    tokenizer: Optional[str] = None
    tokenizer_package: Optional[str] = None
    gguf_file: Optional[str] = None
    text: Any = _f(None, **NESTED)
    eval_fraction: float = _f(0.1, **FRACTION_OPEN)
    path: str = "Salesforce/wikitext"
    name: Optional[str] = None
    data_files: Any = None
    revision: Optional[str] = None
    train_split: str = "train"
    eval_split: str = "test"
    column: str = "text"
    join: str = "\n\n"
    block_size: int = _f(1024, **COUNT)
    batch_size: int = _f(8, **COUNT)
    eval_seq_len: Optional[int] = _f(None, **COUNT)
    eval_batch_size: int = _f(1, **COUNT)
    max_eval_windows: Optional[int] = _f(None, **COUNT)
    max_train_chars: Optional[int] = _f(None, **COUNT)
    max_eval_chars: Optional[int] = _f(None, **COUNT)
    trust_remote_code: bool = False


@dataclass
class _SplitSchema:
    max_rows: Optional[int] = _f(None, **span(3, INT64))
    val_fraction: float = _f(0.1, **FRACTION_OPEN)
    test_fraction: float = _f(0.1, **PROB)
    split_seed: int = _f(0, **SEED)

    def __post_init__(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"val_fraction must leave training rows: val_fraction + test_fraction < 1; "
                f"got {self.val_fraction!r} + {self.test_fraction!r}"
            )


@dataclass
class DiamondExamplesSchema(_SplitSchema):
    image_size: int = _f(32, **span(8, 4096))


@dataclass
class BurberryExamplesSchema(_SplitSchema):
    name: str = "DBQ/Burberry.Product.prices.United.States"
    split: str = "train"
    image_size: int = _f(336, **span(8, 4096))
    image_dir: Optional[str] = None
    download_images: bool = True
    title_column: str = "title"
    category_column: str = "category3_code"
    price_column: str = "price"


@dataclass
class PriceTaskSchema:
    examples: Any = _f(None, **NESTED)
    batch_size: int = _f(64, **COUNT)
    vocab_size: int = _f(2000, **span(2, INT64))
    max_tokens: int = _f(32, **COUNT)
    eval_examples: Optional[int] = _f(None, **COUNT)
    eval_batch_size: int = _f(256, **COUNT)


# ---------------------------------------------------------------------------------------------
# model


@dataclass
class GPTSchema:
    block_size: int = _f(64, **COUNT)
    n_layer: int = _f(4, **COUNT)
    n_head: int = _f(4, **COUNT)
    n_embd: int = _f(128, **COUNT)
    dropout: float = _f(0.0, **PROB)
    bias: bool = False

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise _key_err("n_embd", f"a multiple of model.n_head ({self.n_head})", self.n_embd)


@dataclass
class HFCausalLMSchema:
    name_or_path: Optional[str] = None
    config: Optional[Dict[str, Any]] = None
    package: Optional[str] = None
    gguf_file: Optional[str] = None
    dtype: str = _f("float32", **one_of("auto", "float32", "bfloat16", "float16"))
    device: str = _f("auto", **DEVICE_NAME, auto=True)
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    revision: Optional[str] = None
    attn_implementation: Optional[str] = None


@dataclass
class PretrainedVLMSchema:
    name: str = ""
    auto_class: str = "AutoModelForCausalLM"
    trust_remote_code: bool = False
    dtype: str = _f("bfloat16", **one_of("float32", "bfloat16", "float16"))
    attn_implementation: Optional[str] = None
    processor_kwargs: Optional[Dict[str, Any]] = None
    prompt: str = "{text}"
    keep_dense: List[str] = _f([])
    gradient_checkpointing: bool = True

    def __post_init__(self):
        if "{text}" not in self.prompt:
            raise _key_err("prompt", "a text containing '{text}'", self.prompt)


@dataclass
class PriceVLMSchema:
    channels: List[int] = _f([8, 16, 32], **COUNT)
    width: int = _f(128, **COUNT)
    hidden: int = _f(256, **COUNT)
    n_hidden: int = _f(2, **COUNT0)
    dropout: float = _f(0.0, **PROB)

    def __post_init__(self):
        if len(self.channels) != 3:
            raise _key_err("channels", "a list of 3 integers (one per conv stage)", self.channels)


@dataclass
class TinyLlavaSchema:
    image_size: int = _f(32, **span(8, 4096))
    patch_size: int = _f(8, **COUNT)
    hidden: int = _f(32, **COUNT)
    layers: int = _f(2, **COUNT)
    heads: int = _f(2, **COUNT)
    seed: int = _f(0, **SEED)
    prompt: str = "{text}"
    keep_dense: List[str] = _f([])
    gradient_checkpointing: bool = False

    def __post_init__(self):
        if self.hidden % self.heads:
            raise _key_err("hidden", f"a multiple of model.heads ({self.heads})", self.hidden)
        if "{text}" not in self.prompt:
            raise _key_err("prompt", "a text containing '{text}'", self.prompt)


# ---------------------------------------------------------------------------------------------
# pruner


@dataclass
class PrunerSchema:
    include: Optional[List[str]] = _f(None, regex=True)
    exclude: Optional[List[str]] = _f(None, regex=True)
    scope: str = _f("layer", **one_of("layer", "global"))
    nm: Any = None

    def __post_init__(self):
        if self.nm is None:
            return
        from swp.pruning.nm import parse_nm  # imports torch: only when nm is set

        try:
            parse_nm(self.nm)
        except ConfigError:
            raise _key_err("nm", "null, true (2:4), 'N:M' or [N, M] with 0 < N < M", self.nm) from None


ALLOCATION = one_of("shared_rate", "uniform")


@dataclass
class MagnitudePrunerSchema(PrunerSchema):
    allocation: str = _f("shared_rate", **ALLOCATION)


@dataclass
class RandomPrunerSchema:
    include: Optional[List[str]] = _f(None, regex=True)
    exclude: Optional[List[str]] = _f(None, regex=True)
    scope: str = _f("layer", **one_of("layer", "global"))
    seed: int = _f(0, **SEED)
    allocation: str = _f("shared_rate", **ALLOCATION)


@dataclass
class SWPPrunerSchema(MagnitudePrunerSchema):
    window: Optional[int] = _f(None, **COUNT0)
    average_of: str = _f("magnitude", **one_of("magnitude", "signed"))
    compare: str = _f("importance", **one_of("importance", "current"))
    spread: str = _f("auto", **one_of("auto", "abs", "signed"))
    state_dtype: str = _f("float32", **one_of("float32", why="a 16-bit state loses late tracking points"))
    state_device: Optional[str] = _f(None, **DEVICE_NAME)
    activation_aware: bool = False
    calibration_batches: int = _f(8, **COUNT)
    calibration_seed: int = _f(0, **SEED)


@dataclass
class WandaPrunerSchema(PrunerSchema):
    allocation: str = _f("uniform", **ALLOCATION)
    calibration_batches: int = _f(8, **COUNT)
    calibration_seed: int = _f(0, **SEED)
    sequential: bool = True


@dataclass
class SparseGPTPrunerSchema:
    include: Optional[List[str]] = _f(None, regex=True)
    exclude: Optional[List[str]] = _f(None, regex=True)
    nm: Any = None
    blocksize: int = _f(128, **COUNT)
    percdamp: float = _f(0.01, **span(0, 1))
    calibration_batches: int = _f(8, **COUNT)
    calibration_seed: int = _f(0, **SEED)

    def __post_init__(self):
        PrunerSchema.__post_init__(self)


@dataclass
class GMPPrunerSchema:
    final_sparsity: Optional[float] = _f(None, **PROB)
    end_step: int = _f(0, **COUNT0)
    include: Optional[List[str]] = _f(None, regex=True)
    exclude: Optional[List[str]] = _f(None, regex=True)
    scope: str = _f("layer", **one_of("layer", "global"))
    initial_sparsity: float = _f(0.0, **PROB)
    start_step: int = _f(0, **COUNT0)
    update_every: int = _f(10, **COUNT)
    allocation: str = _f("uniform", **ALLOCATION)


@dataclass
class GradualSWPPrunerSchema(GMPPrunerSchema):
    regrow: bool = False
    window: Optional[int] = _f(None, **COUNT0)
    average_of: str = _f("magnitude", **one_of("magnitude", "signed"))
    spread: str = _f("auto", **one_of("auto", "abs", "signed"))
    state_dtype: str = _f("float32", **one_of("float32", why="a 16-bit state loses late tracking points"))
    state_device: Optional[str] = _f(None, **DEVICE_NAME)


# ---------------------------------------------------------------------------------------------
# schedule


LR = span(0, 1, lo_open=True, why="AdamW moves each weight by about lr per step")
MIN_LR = span(0, 1)


@dataclass
class ScheduleSchema:
    train_steps: int = _f(1500, **COUNT0)
    track_every: int = _f(15, **COUNT)
    finetune_steps: int = _f(300, **COUNT0)
    lr: float = _f(1e-3, **LR)
    min_lr: float = _f(1e-4, **MIN_LR)
    warmup_steps: int = _f(100, **COUNT0)
    finetune_lr: float = _f(3e-4, **LR)
    finetune_min_lr: float = _f(3e-5, **MIN_LR)
    finetune_warmup_steps: int = _f(20, **COUNT0)
    weight_decay: float = _f(0.1, **span(0, math.inf))
    beta1: float = _f(0.9, **PROB)
    beta2: float = _f(0.99, **PROB)
    grad_clip: float = _f(1.0, **span(0, math.inf, why="0 disables clipping"))
    eval_every: int = _f(0, **COUNT0)
    log_every: int = _f(10, **COUNT)
    eval_initial: bool = False
    eval_every_tokens: int = _f(0, **COUNT0)

    def __post_init__(self):
        for low, high in (("min_lr", "lr"), ("finetune_min_lr", "finetune_lr")):
            if getattr(self, low) > getattr(self, high):
                raise _key_err(low, f"<= schedule.{high} ({getattr(self, high)!r})", getattr(self, low))
        for lr in ("lr", "finetune_lr"):
            if getattr(self, lr) * self.weight_decay >= 1:
                raise ConfigError(
                    f"weight_decay must be below 1 / schedule.{lr} (AdamW multiplies each weight by "
                    f"1 - lr * weight_decay every step); got {self.weight_decay!r} with {lr}={getattr(self, lr)!r}"
                )


# ---------------------------------------------------------------------------------------------
# logger, export, energy


@dataclass
class EmptySchema:
    """Options without settings (no-op logger, export and meter)."""


@dataclass
class WandbSchema:
    project: str = "swp"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: Optional[List[str]] = None
    name: Optional[str] = None
    job_type: Optional[str] = "train"
    notes: Optional[str] = None
    mode: Optional[str] = _f(None, **one_of("online", "offline", "disabled"))
    init_timeout: float = _f(60.0, **span(0, 86400, lo_open=True))


@dataclass
class HFExportSchema:
    subdir: str = "hf_export"
    check_metrics: bool = True

    def __post_init__(self):
        parts = self.subdir.replace("\\", "/").split("/")
        if not self.subdir.strip() or self.subdir.startswith("/") or ".." in parts:
            raise _key_err("subdir", "a folder name inside the run folder", self.subdir)


@dataclass
class CodeCarbonSchema:
    country_iso_code: str = "USA"
    region: Optional[str] = None
    tracking_mode: str = _f("process", **one_of("process", "machine"))
    force_cpu_power: Optional[float] = _f(None, **span(0, 1e5, lo_open=True, why="watts"))
    force_ram_power: Optional[float] = _f(None, **span(0, 1e5, lo_open=True, why="watts"))
    pue: float = _f(1.0, **span(1, 10, why="power usage effectiveness is >= 1"))
    carbon_intensity_g_per_kwh: Optional[float] = _f(None, **span(0, 1e4))

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z]{3}", self.country_iso_code):
            raise _key_err("country_iso_code", "a 3-letter ISO code like USA", self.country_iso_code)


@dataclass
class DDPSchema:
    backend: str = _f("auto", **one_of("auto", "gloo", "nccl"))
    timeout_s: float = _f(300.0, **span(0, 86400, lo_open=True))
    bucket_cap_mb: float = _f(25.0, **span(0, 4096, lo_open=True))


@dataclass
class FSDPSchema:
    backend: str = _f("auto", **one_of("auto", "gloo", "nccl"))
    timeout_s: float = _f(300.0, **span(0, 86400, lo_open=True))
    reshard_after_forward: bool = True
    units: List[str] = field(default_factory=lambda: ["Block"])


SCHEMAS: dict[str, type] = {
    "swp.tasks.char_lm.CharLMTask": CharLMSchema,
    "swp.tasks.token_lm.TokenLMTask": TokenLMSchema,
    "swp.tasks.price.PriceTask": PriceTaskSchema,
    "swp.data.text.shakespeare_text": ShakespeareTextSchema,
    "swp.data.text.local_text": LocalTextSchema,
    "swp.data.text.hf_text": HFTextSchema,
    "swp.data.diamonds.diamond_examples": DiamondExamplesSchema,
    "swp.data.burberry.burberry_examples": BurberryExamplesSchema,
    "swp.models.gpt.GPT": GPTSchema,
    "swp.models.hf_causal_lm.hf_causal_lm": HFCausalLMSchema,
    "swp.models.price_pretrained.pretrained_vlm": PretrainedVLMSchema,
    "swp.models.price_small.PriceVLM": PriceVLMSchema,
    "swp.models.price_pretrained.tiny_random_llava": TinyLlavaSchema,
    "swp.pruners.swp.SWPPruner": SWPPrunerSchema,
    "swp.pruners.simple.MagnitudePruner": MagnitudePrunerSchema,
    "swp.pruners.wanda.WandaPruner": WandaPrunerSchema,
    "swp.pruners.sparsegpt.SparseGPTPruner": SparseGPTPrunerSchema,
    "swp.pruners.gmp.GMPPruner": GMPPrunerSchema,
    "swp.pruners.swp_gradual.GradualSWPPruner": GradualSWPPrunerSchema,
    "swp.pruners.simple.NoPruner": PrunerSchema,
    "swp.pruners.simple.RandomPruner": RandomPrunerSchema,
    "swp.training.schedule.Schedule": ScheduleSchema,
    "swp.logging.base.NullLogger": EmptySchema,
    "swp.logging.wandb_logger.WandbLogger": WandbSchema,
    "swp.export.none.no_export": EmptySchema,
    "swp.export.hf_pretrained.export_hf_pretrained": HFExportSchema,
    "swp.energy.meter.NullMeter": EmptySchema,
    "swp.energy.meter.CodeCarbonMeter": CodeCarbonSchema,
    "swp.distributed.strategy.NoDistributed": EmptySchema,
    "swp.distributed.strategy.DDP": DDPSchema,
    "swp.distributed.strategy.FSDP": FSDPSchema,
}


# ---------------------------------------------------------------------------------------------
# The checks


def validate_config(cfg: DictConfig) -> None:
    """Checks every value of the composed run config; raises on the first bad one.

    Raises:
        ConfigError: one line, ``<key> must be ...; got ...`` (or a missing / unresolvable key).
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"required setting(s) not given: {', '.join(missing)} (add e.g. {missing[0]}=... to the command)"
        )
    try:
        raw = OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an interpolation to a key that does not exist, a bad resolver
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"the config cannot be resolved: {first}") from None
    validate_resolved(raw)


def validate_resolved(raw: dict) -> None:
    """`validate_config` on the resolved config as plain containers (what tests walk)."""
    raw = {k: v for k, v in raw.items() if k != "hydra"}
    check_node(TrainSchema, raw, "")


def check_node(schema: type, raw: dict, prefix: str, target: str = "conf/train.yaml"):
    """Checks one config node (a dict) against `schema`; `prefix` is its dotted key + '.'.

    Returns:
        The schema instance built from the node (its ``__post_init__`` rules passed).
    """
    if not isinstance(raw, dict):
        raise _key_err(prefix.rstrip(".") or "config", "a mapping of settings", raw)
    plain = {k: v for k, v in raw.items() if k not in HYDRA_KEYS}
    names = {f.name for f in fields(schema)}
    for key in plain:
        if key not in names:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(f"{prefix}{key} is not a setting of {target} (its settings: {known}); got {plain[key]!r}")
    values = {}
    for f in fields(schema):
        if f.name not in plain:
            continue
        value, key = plain[f.name], prefix + f.name
        if f.metadata.get("nested"):
            if value is not None:
                check_option(value, key)
            continue  # validated by its own schema; the parent's rules never look inside it
        values[f.name] = _check_value(key, value, _hint(schema, f.name), f.metadata)
    # Cross-field rules: building the schema runs its __post_init__.
    try:
        return schema(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def check_option(node, key: str) -> None:
    """Checks one group's option (or a nested instantiable node) by its ``_target_``."""
    if not isinstance(node, dict):
        raise _key_err(key, "a config group option (a mapping with _target_)", node)
    target = node.get("_target_")
    if not isinstance(target, str) or not target:
        raise _key_err(f"{key}._target_", "the dotted name of a class or function", target)
    schema = SCHEMAS.get(target)
    if schema is None:  # your own class: its constructor owns its checks
        return
    for flag in ("_partial_", "_recursive_"):
        if flag in node and not isinstance(node[flag], bool):
            raise _key_err(f"{key}.{flag}", "true or false", node[flag])
    check_node(schema, node, key + ".", target)


@functools.lru_cache(maxsize=None)
def _hints(schema: type) -> dict:
    return typing.get_type_hints(schema)


def _hint(schema: type, name: str):
    return _hints(schema)[name]


def _check_value(key: str, value, hint, meta):
    """Checks one leaf (strict types, then range / choices); returns it (a nested schema: built)."""
    optional = False
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
        origin = typing.get_origin(hint)
    null = " or null"
    if value is None:
        if optional or hint is Any and "one_of" not in meta:
            return value
        raise _key_err(key, _describe(hint, meta), value)
    if is_dataclass(hint):
        return check_node(hint, value, key + ".", key)
    if origin in (list, List):
        return _check_list(key, value, hint, meta, null if optional else "")
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise _key_err(key, "a mapping" + (null if optional else ""), value)
        return value
    if hint is Any:
        if "one_of" in meta and not any(value == o and type(value) is type(o) for o in meta["one_of"]):
            raise _key_err(key, _choices(meta["one_of"]), value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _key_err(key, "true or false" + (null if optional else ""), value)
        return value
    if hint is str:
        return _check_str(key, value, meta, null if optional else "")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _key_err(key, _describe(hint, meta) + (null if optional else ""), value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _key_err(key, _describe(hint, meta) + (null if optional else ""), value)
    if "span" in meta and not _inside(value, meta["span"]):
        raise _key_err(key, _describe(hint, meta) + (null if optional else ""), value)
    return value


def _check_list(key: str, value, hint, meta, or_null: str):
    """A list leaf: a list (not a string read as characters), each item checked, regexes compiled."""
    (item,) = typing.get_args(hint) or (Any,)
    kind = {str: "strings", int: "integers"}.get(item, "values")
    if not isinstance(value, list):
        eg = f" (e.g. [{value}])" if isinstance(value, str) else ""
        raise _key_err(key, f"a list of {kind}{eg}" + or_null, value)
    for i, v in enumerate(value):
        _check_value(f"{key}[{i}]", v, item, {k: m for k, m in meta.items() if k in ("span", "why")})
        if meta.get("regex"):
            try:
                re.compile(v)
            except re.error as exc:
                raise _key_err(f"{key}[{i}]", f"a valid regular expression ({exc})", v) from None
    return value


def _check_str(key: str, value, meta, or_null: str):
    """A string leaf: a string, one of the choices, a device name where asked."""
    if not isinstance(value, str):
        raise _key_err(key, "a string" + or_null, value)
    if "one_of" in meta and value not in meta["one_of"]:
        raise _key_err(key, _choices(meta["one_of"]) + or_null, value)
    if meta.get("device") and not (DEVICE.match(value) or (meta.get("auto") and value == "auto")):
        names = "auto, cpu, cuda or cuda:N" if meta.get("auto") else "cpu, cuda or cuda:N"
        raise _key_err(key, f"a device name ({names})" + or_null, value)
    return value


def _inside(value, spec) -> bool:
    lo, hi, lo_open, hi_open = spec
    return (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)


def _describe(hint, meta) -> str:
    kind = "an integer" if hint is int else "a finite number" if hint is float else "a value"
    if "span" not in meta:
        return kind
    lo, hi, lo_open, hi_open = meta["span"]
    if hi in (INT64, math.inf):
        rule = f"> {lo:g}" if lo_open else f">= {lo:g}"
    else:
        rule = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    why = f" ({meta['why']})" if meta.get("why") else ""
    return f"{kind} {rule}{why}"


def _choices(options) -> str:
    words = [str(o).lower() if isinstance(o, bool) else str(o) for o in options]
    return "one of " + ", ".join(words)


def iter_fields(raw: dict, schema: type = TrainSchema, prefix: str = ""):
    """Every checked leaf of a resolved config: (dotted key, type hint, field metadata).

    Follows the same schemas as `validate_config` (nested options by their ``_target_``), so a
    test can walk every key of every option through bad values without listing them.
    """
    hints = _hints(schema)
    for f in fields(schema):
        if f.name not in raw:
            continue
        value, key = raw[f.name], prefix + f.name
        if f.metadata.get("nested"):
            if isinstance(value, dict) and value.get("_target_") in SCHEMAS:
                yield from iter_fields(value, SCHEMAS[value["_target_"]], key + ".")
            continue
        if is_dataclass(hints[f.name]) and isinstance(value, dict):
            yield from iter_fields(value, hints[f.name], key + ".")
            continue
        yield key, hints[f.name], dict(f.metadata)
