"""Which parameters are prunable: the Linear weights the model does not keep dense, narrowed by name patterns."""

from __future__ import annotations

import re
from typing import Sequence

from torch import nn

from swp.errors import ConfigError
from swp.models.structure import ModelStructure, declares_structure, model_structure, plain_structure


def prunable_parameters(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The 2-D weights of the model's Linear layers, minus the weights it keeps dense, filtered by name.

    The model says which module types are Linear layers and which weights stay dense
    (`swp.models.structure`): ``nn.Linear`` for every model, plus transformers' ``Conv1D`` for a
    Hugging Face model; its output head and input embedding (a Hugging Face model's
    ``get_output_embeddings()`` / ``get_input_embeddings()``, our models' ``structure()``), and
    whatever else its structure lists (the vision-language wrapper's vision tower, unless its
    config empties ``keep_dense``). Embeddings, norms and biases are not Linear weights, so they
    stay dense anyway. A model that declares nothing offers all its ``nn.Linear`` weights.
    Patterns are regular expressions searched in the parameter's state-dict name.

    A weight shared by several modules (tied layers) is one prunable tensor, under the first
    name ``named_modules`` gives it, so it is scored, masked and counted once; a weight tied to
    a dense one (e.g. the embedding of SmolLM2 or GPT-2, tied to the head) stays dense wherever
    it is used.

    Args:
        model: the model whose parameters are selected.
        include: if given, keep only names matching at least one pattern; every pattern must
            match something, so a typo fails instead of silently pruning nothing.
        exclude: drop names matching any pattern.

    Raises:
        ConfigError: an include pattern matches no candidate, or nothing is left to prune.
    """
    candidates = _linear_weights(model, _structure(model))
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


def _structure(model: nn.Module) -> ModelStructure:
    """The model's declared structure, or the plain one for a model that declares nothing."""
    return model_structure(model) if declares_structure(model) else plain_structure(model)


def _linear_weights(model: nn.Module, structure: ModelStructure) -> dict[str, nn.Parameter]:
    """Every Linear weight once (shared ones under their first name), minus the dense ones."""
    dense = {id(model.get_parameter(name)) for name in structure.dense}
    candidates: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    # remove_duplicate=False: a module registered twice is still visited once per name, and
    # `seen` (by tensor identity) keeps one name per shared weight.
    for mod_name, module in model.named_modules(remove_duplicate=False):
        if structure.input_axis(module) is None or id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        if id(module.weight) not in dense:
            candidates[f"{mod_name}.weight" if mod_name else "weight"] = module.weight
    return candidates


def input_feature_axes(model: nn.Module, names) -> dict[str, int]:
    """The axis of each selected weight that runs over its layer's input features.

    Structured rules that group weights per output (N:M groups M consecutive inputs of one
    output) need it: ``nn.Linear`` stores (out, in), so axis 1; transformers' ``Conv1D``
    stores (in, out), so axis 0 (the model's structure says which).
    """
    structure = _structure(model)
    axes = {}
    for name in names:
        module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        axes[name] = structure.input_axis(module)
        if axes[name] is None:
            raise ValueError(f"{name} is not the weight of a Linear or Conv1D layer")
    return axes


def input_feature_axis(model: nn.Module, name: str) -> int:
    """`input_feature_axes` for one weight."""
    return input_feature_axes(model, [name])[name]
