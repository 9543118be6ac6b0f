"""A tiny model of Linear blocks in an ``nn.ModuleList`` and calibration inputs for it: the shape
the activation-aware pruners (Wanda, SparseGPT) traverse, small enough to check by hand."""

from __future__ import annotations

import torch
from torch import nn

from swp.models.structure import ModelStructure


class Residual(nn.Sequential):
    """x + layers(x): a block that adds its own residual, so each block's output is the next one's input."""

    def forward(self, x):
        return x + super().forward(x)


class TwoBlocks(nn.Module):
    """Two residual blocks of Linear -> ReLU -> Linear (seeded: the same weights every time)."""

    def __init__(self, width: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(Residual(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                                    for _ in range(2))

    def structure(self) -> ModelStructure:
        return ModelStructure(blocks=("blocks.0", "blocks.1"))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def forward(model: nn.Module, batch: torch.Tensor) -> None:
    """The ``forward(model, batch)`` a run hands to ``Pruner.calibrate``."""
    with torch.no_grad():
        model(batch)


def batches(width: int = 8, n: int = 3) -> list[torch.Tensor]:
    """n batches of 4 x 5 tokens whose features differ in loudness (0.1 to 3)."""
    g = torch.Generator().manual_seed(1)
    scale = torch.linspace(0.1, 3.0, width)
    return [torch.randn(4, 5, width, generator=g) * scale for _ in range(n)]
