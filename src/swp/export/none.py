"""The default: no export beyond the run folder's model.safetensors."""

from __future__ import annotations


def no_export(**_) -> dict:
    """Exports nothing and adds nothing to results.json."""
    return {}
