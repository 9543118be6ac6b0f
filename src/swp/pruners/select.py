"""Which parameters are prunable: found by module type, narrowed by name patterns."""

from __future__ import annotations

import re
import sys
from typing import Sequence

from torch import nn

from swp.errors import ConfigError


def prunable_parameters(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The 2-D weights of the model's Linear layers, minus its output head, filtered by name.

    "Linear layers" are found by module type: ``nn.Linear`` and the other types of
    `linear_types()` (Hugging Face GPT-2's ``Conv1D``), never by model-family names. The output
    head (``model.get_output_embeddings()`` where the model has one, as Hugging Face models and
    ours do) stays dense, as do embeddings, norms and biases, because they are not
    Linear weights. A model may also name weights to keep dense in a ``keep_dense`` attribute
    (regexes; the vision-language wrapper keeps its vision tower dense this way unless its config
    empties the list). Patterns are regular expressions searched in the parameter's state-dict name.

    A weight shared by several modules (tied layers) is one prunable tensor, under the first
    name ``named_modules`` gives it, so it is scored, masked and counted once; a weight tied to
    the output head (e.g. the embedding of SmolLM2 or GPT-2) stays dense wherever it is used.

    Args:
        model: the model whose parameters are selected.
        include: if given, keep only names matching at least one pattern; every pattern must
            match something, so a typo fails instead of silently pruning nothing.
        exclude: drop names matching any pattern.

    Raises:
        ConfigError: an include pattern matches no candidate, or nothing is left to prune.
    """
    candidates = _linear_weights(model)
    if include:
        for pattern in include:
            if not any(re.search(pattern, n) for n in candidates):
                raise ConfigError(
                    f"include pattern {pattern!r} matches no prunable parameter "
                    f"(candidates look like {sorted(candidates)[:3]})"
                )
        candidates = {n: p for n, p in candidates.items() if any(re.search(q, n) for q in include)}
    if exclude:
        candidates = {n: p for n, p in candidates.items() if not any(re.search(q, n) for q in exclude)}
    if not candidates:
        raise ConfigError("no parameter is left to prune after the include/exclude patterns")
    return candidates


def _linear_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every Linear weight once (shared ones under their first name), minus the head and keep_dense."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)
    keep_dense = tuple(getattr(model, "keep_dense", ()) or ())
    candidates: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    # remove_duplicate=False: a module registered twice is still visited once per name, and
    # `seen` (by tensor identity) keeps one name per shared weight.
    for mod_name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, linear_types()) and module.weight is not head_weight and id(module.weight) not in seen:
            seen.add(id(module.weight))
            name = f"{mod_name}.weight" if mod_name else "weight"
            if not any(re.search(q, name) for q in keep_dense):
                candidates[name] = module.weight
    return candidates


def linear_types() -> tuple[type, ...]:
    """Module types that are a dense matrix product: ``nn.Linear``, and ``Conv1D`` of
    `transformers` (GPT-2 family) when transformers is already loaded.

    A model holding a Conv1D can only exist once transformers was imported, so looking it up in
    ``sys.modules`` finds every such model without making transformers a start-up cost here.
    """
    utils = sys.modules.get("transformers.pytorch_utils")
    conv1d = getattr(utils, "Conv1D", None)
    return (nn.Linear, conv1d) if conv1d is not None else (nn.Linear,)


def input_feature_axis(model: nn.Module, name: str) -> int:
    """The axis of a selected weight that runs over the layer's input features.

    Structured rules that group weights per output (N:M groups M consecutive inputs of one
    output) need it: ``nn.Linear`` stores (out, in), so axis 1; transformers' ``Conv1D``
    stores (in, out), so axis 0.
    """
    module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    if isinstance(module, nn.Linear):
        return 1
    if isinstance(module, linear_types()):
        return 0
    raise ValueError(f"{name} is not the weight of a Linear or Conv1D layer")
