"""Sparsity as measured on the weights themselves: results.json's figures and the prune/ metric lines."""

from __future__ import annotations

from torch import nn

from swp.infra.io import unique_parameters
from swp.pruning.masks import MaskSet
from swp.pruning.threshold import sparsity


def sparsity_report(model: nn.Module, params: dict[str, nn.Parameter], masks: MaskSet | None, thresholds: dict) -> dict:
    """Sparsity measured on the weights themselves (zeros / elements), not taken from masks."""
    pruned = list(params.values())
    return {
        "sparsity": sparsity(pruned),
        "sparsity_overall": sparsity(unique_parameters(model)),
        "mask_sparsity": masks.sparsity() if masks is not None else 0.0,
        "prunable_params": sum(p.numel() for p in pruned),
        "total_params": sum(p.numel() for p in unique_parameters(model)),
        "layers": [
            {"name": n, "numel": p.numel(), "sparsity": sparsity([p]), "threshold": thresholds.get(n)}
            for n, p in params.items()
        ],
    }


def sparsity_metrics(model: nn.Module, params: dict[str, nn.Parameter], thresholds: dict) -> dict:
    """The ``prune/...`` metric lines: overall and per-layer sparsity and thresholds."""
    report = sparsity_report(model, params, None, thresholds)
    out = {"prune/sparsity": report["sparsity"], "prune/sparsity_overall": report["sparsity_overall"]}
    for layer in report["layers"]:
        out[f"prune/layer/{layer['name']}/sparsity"] = layer["sparsity"]
        if layer["threshold"] is not None:
            out[f"prune/layer/{layer['name']}/threshold"] = layer["threshold"]
    return out


def allocation_metrics(facts: dict) -> dict:
    """The ``prune/layer/<block>/...`` metric lines of an OWL allocation (`Pruner.allocation_facts`):
    each block's outlier ratio and the sparsity OWL gave it; none for the other allocations."""
    out = {}
    for layer in facts.get("owl_layers", ()):
        out[f"prune/layer/{layer['layer']}/owl_outlier_ratio"] = layer["outlier_ratio"]
        out[f"prune/layer/{layer['layer']}/owl_sparsity"] = layer["sparsity"]
    return out
