"""What a run leaves in its folder: results.json and safetensors files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file, save_model
from torch import nn


def write_json_atomic(path: Path, obj) -> None:
    """Writes JSON through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Saves named tensors (moved to CPU, contiguous) as safetensors."""
    save_file({n: t.detach().cpu().contiguous() for n, t in tensors.items()}, str(path))


def save_model_weights(path: Path, model: nn.Module) -> None:
    """Saves the model's state dict as safetensors; tied weights are stored once."""
    save_model(model, str(path))


def unique_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter once, even when tied (the GPT head shares the token embedding)."""
    seen, out = set(), []
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
