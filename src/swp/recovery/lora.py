"""`recovery=lora`: low-rank adapters (the `peft` library) train on the frozen, pruned weights, and
are merged under the masks at the end, so the merged model is exactly as sparse as the pruned one.

A plain LoRA merge (``W + B A * s``) writes the dense update into the pruned positions and the
sparsity is lost (locuslab/wanda issue 83: 40% fell to 32.7%). Here the update of a pruned layer
is ``(B A * s) * M`` (M its keep-mask), in training (``masked_delta=true``, a peft LoRA variant)
and in the merge, so the model that was fine-tuned is the model that is merged and exported, and
every pruned weight stays exactly 0. Sparsity before and after the merge is measured on the
weights, must be equal (else the run fails), and is recorded in results.json.

With ``masked_delta=false`` the adapters train as plain LoRA (a dense update) and only the merge
applies the masks: the merged model is still exactly sparse, but it drops the part of what the
adapters learned that fell on pruned weights (for comparison).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from swp.config_types import Check, Count, Fraction, Range, Regex, check_arguments
from swp.errors import ConfigError
from swp.pruning.masks import MaskSet
from swp.recovery.base import Recovery
from swp.stages import Stage

ADAPTER = "default"  # peft's adapter name

TargetModules = Annotated[Sequence[str], Check(len, "a non-empty list of module names (or one regex)")]


class LoRARecovery(Recovery):
    """LoRA fine-tuning that keeps the masks through the merge.

    Args:
        rank: r, the adapters' rank.
        alpha: the update is scaled by alpha / rank.
        target_modules: module names or suffixes (peft's ``target_modules``; a single string is a
            regex over the full module path); None: exactly the layers the pruner prunes.
        dropout: dropout on the adapters' input.
        masked_delta: the adapters' update is masked in training too (see the module docstring).
    """

    adapts: ClassVar[bool] = True

    def __init__(self, rank: Count = 8, alpha: Annotated[float, Range(0, 1e6, lo_open=True)] = 16.0,
                 target_modules: TargetModules | Annotated[str, Regex()] | None = None,
                 dropout: Fraction = 0.0, masked_delta: bool = True):
        check_arguments(LoRARecovery, locals(), at="recovery")
        self.rank, self.alpha, self.dropout, self.masked_delta = int(rank), float(alpha), float(dropout), masked_delta
        self.target_modules = target_modules if target_modules is None or isinstance(target_modules, str) \
            else list(target_modules)
        self.layers: dict[str, nn.Module] = {}
        self.pruned: dict[str, nn.Parameter] = {}
        self.trainable: list[nn.Parameter] = []
        self.facts: dict = {}

    def settings(self) -> dict:
        return {"rank": self.rank, "alpha": self.alpha, "target_modules": self.target_modules,
                "dropout": self.dropout, "masked_delta": self.masked_delta}

    def check(self, *, task, model: nn.Module, pruned: dict[str, nn.Parameter], finetune_steps: int,
              prunes_in_dense: bool, shards_parameters: bool) -> None:
        if finetune_steps == 0:
            raise ConfigError("recovery=lora trains adapters in the fine-tune: schedule.finetune_steps=0 leaves "
                              "nothing to train (set schedule.finetune_steps > 0)")
        if shards_parameters:
            raise ConfigError("recovery=lora is not supported under distributed=fsdp; use distributed=ddp or one "
                              "process")
        if not self._matched(model, pruned):
            raise ConfigError(f"recovery.target_modules={self.target_modules!r} matches no module of "
                              f"{type(model).__name__}")

    def _config(self, pruned: dict[str, nn.Parameter]):
        from peft import LoraConfig

        targets = self.target_modules if self.target_modules is not None else [_module_path(n) for n in pruned]
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=targets, lora_dropout=self.dropout,
                          bias="none")

    def _matched(self, model: nn.Module, pruned: dict[str, nn.Parameter]) -> list[str]:
        from peft.tuners.tuners_utils import check_target_module_exists

        config = self._config(pruned)
        return [path for path, _ in model.named_modules() if path and check_target_module_exists(config, path)]

    def attach(self, model: nn.Module, masks: MaskSet | None, pruned: dict[str, nn.Parameter]) -> None:
        """Injects the adapters (base weights frozen) and, with ``masked_delta``, masks their update."""
        import warnings

        from peft import inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        self.pruned = pruned
        self.trainable = [p for p in model.parameters() if p.requires_grad]  # trainable again after the merge
        before = weight_sparsity(pruned)
        with warnings.catch_warnings():  # GPT-2's Conv1D: peft says it sets fan_in_fan_out itself
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            inject_adapter_in_model(self._config(pruned), model)
        self.layers = {path: m for path, m in model.named_modules() if isinstance(m, LoraLayer)}
        keep = layer_masks(masks)
        if self.masked_delta:
            for path, layer in self.layers.items():
                if path in keep:
                    layer.lora_variant[ADAPTER] = MaskedDelta(keep[path])
        adapter = [p for n, p in model.named_parameters() if "lora_" in n]
        self.facts = {"lora_layers": len(self.layers), "lora_adapter_params": sum(p.numel() for p in adapter),
                      "lora_adapter_bytes": sum(p.numel() * p.element_size() for p in adapter),
                      "lora_sparsity_before_merge": before}

    @torch.no_grad()
    def finish(self, model: nn.Module, masks: MaskSet | None) -> None:
        """Merges every adapter under its layer's mask, puts the base layers back and makes the
        parameters that were trainable before `attach` trainable again."""
        keep = layer_masks(masks)
        for path, layer in self.layers.items():
            base = layer.get_base_layer()
            delta = layer.get_delta_weight(ADAPTER)
            if path in keep:
                delta = delta * keep[path]
            base.weight.add_(delta.to(base.weight.dtype))
            _replace(model, path, base)
        self.layers = {}
        for p in self.trainable:
            p.requires_grad_(True)
        if masks is not None:
            masks.check("after the LoRA merge")  # every pruned weight exactly 0, else MaskDriftError
        # Equal to the value before the merge (only a kept weight that was exactly 0 could move).
        self.facts["lora_sparsity_after_merge"] = weight_sparsity(self.pruned)

    def restore(self, stage: Stage, model: nn.Module, masks: MaskSet | None, pruned: dict[str, nn.Parameter],
                state: dict | None) -> None:
        self.facts = dict((state or {}).get("facts", {}))
        if stage == Stage.FINETUNE:  # saved mid-fine-tune: its weights name the adapters
            before = self.facts.get("lora_sparsity_before_merge")
            self.attach(model, masks, pruned)
            self.facts["lora_sparsity_before_merge"] = before

    def state_dict(self) -> dict:
        return {"facts": dict(self.facts)}

    def results(self) -> dict:
        return super().results() | self.facts


class MaskedDelta:
    """A peft LoRA variant for a pruned layer: the adapter's update counts only where the layer's
    keep-mask keeps the weight, in the forward pass and in any merge.

    Args:
        keep: the layer's boolean keep-mask, in the layout of its weight.
    """

    def __init__(self, keep: torch.Tensor):
        self.keep = keep

    def delta(self, module, adapter: str) -> torch.Tensor:
        """(B A * scaling) * M, in the base weight's layout."""
        return module.get_delta_weight(adapter) * self.keep

    def forward(self, module, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs) -> torch.Tensor:
        from peft.utils.other import transpose

        weight = transpose(self.delta(module, active_adapter), module.fan_in_fan_out)  # (out, in)
        return result + F.linear(module.lora_dropout[active_adapter](x), weight)

    def merge_safe(self, module, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight + self.delta(module, active_adapter).to(orig_weight.dtype)

    def merge_unsafe(self, module, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data += self.delta(module, active_adapter).to(orig_weight.dtype)

    def unmerge(self, module, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        return orig_weight - self.delta(module, active_adapter).to(orig_weight.dtype)

    def supports_lora_conversion(self) -> bool:
        return True


def _module_path(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0]


def layer_masks(masks: MaskSet | None) -> dict[str, torch.Tensor]:
    """Each pruned weight's keep-mask under its layer's module path."""
    if masks is None:
        return {}
    return {_module_path(name): keep for name, keep in masks.keep.items()}


def weight_sparsity(params: dict[str, torch.Tensor]) -> float:
    """Fraction of exact zeros over the given tensors, measured on the weights themselves."""
    total = sum(p.numel() for p in params.values())
    zeros = sum(int((p.detach() == 0).sum()) for p in params.values())
    return zeros / total if total else 0.0


def _replace(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)
