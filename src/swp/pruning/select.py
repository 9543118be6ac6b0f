"""Which parameters are prunable: found by module type, narrowed by name patterns."""

from __future__ import annotations

import re
from typing import Sequence

from torch import nn

from swp.errors import ConfigError


def prunable_parameters(
    model: nn.Module,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The 2-D weights of the model's Linear layers, minus its output head, filtered by name.

    The output head (``model.get_output_embeddings()`` where the model has one, as Hugging Face
    models and ours do) stays dense, as do embeddings, norms and biases, because they are not
    Linear weights. A model may also name weights to keep dense in a ``keep_dense`` attribute
    (regexes; the vision-language wrapper keeps its vision tower dense this way unless its config
    empties the list). Patterns are regular expressions searched in the parameter's state-dict name.

    Args:
        model: the model whose parameters are selected.
        include: if given, keep only names matching at least one pattern; every pattern must
            match something, so a typo fails instead of silently pruning nothing.
        exclude: drop names matching any pattern.

    Raises:
        ConfigError: an include pattern matches no candidate, or nothing is left to prune.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)
    keep_dense = tuple(getattr(model, "keep_dense", ()) or ())
    candidates: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight is not head_weight:
            name = f"{mod_name}.weight" if mod_name else "weight"
            if not any(re.search(q, name) for q in keep_dense):
                candidates[name] = module.weight
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
