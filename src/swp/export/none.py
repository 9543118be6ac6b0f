"""The default: no export beyond the run folder's model.safetensors."""

from __future__ import annotations

from typing import Annotated

from swp.config_types import Runtime


def no_export(**_: Annotated[object, Runtime("the run's model, task and folder")]) -> dict:
    """Exports nothing and adds nothing to results.json."""
    return {}
