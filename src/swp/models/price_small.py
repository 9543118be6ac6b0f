"""A small image-and-text price regressor that trains on a CPU in minutes."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn
from torch.nn import functional as F

from swp.config_types import Count, Count0, Fraction, Runtime, Why, check_arguments
from swp.models.structure import ModelStructure


class PriceVLM(nn.Module):
    """A CNN image encoder and a bag-of-words text encoder, fused by an MLP into one number.

    The convolutions stay dense (pruners select Linear weights); the Linear layers (image and
    text projections, fusion MLP) are the prunable part, and the one-output head is kept dense
    like a language model's head (`structure`).

    Args:
        vocab_size: word ids of the task's vocabulary (0 pads).
        channels: output channels of the three 3x3 conv stages (each followed by 2x2 pooling,
            the last by global average pooling).
        width: size of the image and text embeddings.
        hidden: width of the fusion MLP.
        n_hidden: Linear+GELU layers in the fusion MLP.
        dropout: dropout before the head.
        image_size: accepted from the task and unused (global pooling fits any size).
    """

    def __init__(
        self,
        vocab_size: Annotated[int, Runtime("the task's word ids")],
        channels: Annotated[tuple[Count, Count, Count], Why("one per conv stage")] = (8, 16, 32),
        width: Count = 128,
        hidden: Count = 256,
        n_hidden: Count0 = 2,
        dropout: Fraction = 0.0,
        image_size: Annotated[int | None, Runtime("the task's, unused")] = None,
    ):
        check_arguments(PriceVLM, locals(), at="model")
        super().__init__()
        c1, c2, c3 = channels
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.image_proj = nn.Linear(c3, width)
        self.word_emb = nn.Embedding(vocab_size, width, padding_idx=0)
        self.text_proj = nn.Linear(width, width)
        layers: list[nn.Module] = []
        d = 2 * width
        for _ in range(n_hidden):
            layers += [nn.Linear(d, hidden), nn.GELU()]
            d = hidden
        self.fusion = nn.Sequential(*layers, nn.Dropout(dropout))
        self.head = nn.Linear(d, 1)

    def get_output_embeddings(self) -> nn.Module:
        """The regression head (the name transformers gives a model's output layer)."""
        return self.head

    def structure(self) -> ModelStructure:
        """No repeated blocks; the word embedding and the head stay dense."""
        return ModelStructure(blocks=(), dense=("word_emb.weight", "head.weight"))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, texts=None) -> torch.Tensor:
        """Predicted standardised log price, (B,), from uint8 images (B, 3, H, W) and word ids.

        Args:
            images: uint8 RGB images.
            tokens: word ids, 0 = padding.
            texts: the raw texts, unused here (pretrained models read them).
        """
        x = images.float() / 127.5 - 1.0
        img = self.image_proj(self.image_encoder(x))
        present = (tokens != 0).unsqueeze(-1).float()
        words = (self.word_emb(tokens) * present).sum(1) / present.sum(1).clamp(min=1.0)  # mean of the words
        txt = self.text_proj(words)
        h = self.fusion(F.gelu(torch.cat([img, txt], dim=-1)))
        return self.head(h).squeeze(-1)
