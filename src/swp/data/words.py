"""A word-level vocabulary for short product texts (titles, templated descriptions)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[^\w\s]")  # numbers whole, words, punctuation
PAD, UNK = 0, 1


def words(text: str) -> list[str]:
    """Lower-cased words, whole numbers ("0.23") and punctuation marks."""
    return _TOKEN.findall(text.lower())


class WordVocab:
    """The most frequent words of the training texts; id 0 pads, id 1 is any other word.

    Args:
        texts: the texts the vocabulary is built from (the training split only, so held-out
            rows cannot leak words into it).
        max_size: at most this many ids, PAD and UNK included.
    """

    def __init__(self, texts: Iterable[str], max_size: int = 2000):
        if max_size < 3:
            raise ValueError(f"vocab max_size must be at least 3, got {max_size}")
        counts = Counter(w for t in texts for w in words(t))
        # Ties broken alphabetically so the vocabulary never depends on row order.
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max_size - 2]
        self.itos = ["<pad>", "<unk>"] + [w for w, _ in ranked]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str], length: int) -> np.ndarray:
        """Token ids, (len(texts), length) int64, cut or padded with PAD to `length`."""
        out = np.full((len(texts), length), PAD, dtype=np.int64)
        for i, t in enumerate(texts):
            ids = [self.stoi.get(w, UNK) for w in words(t)[:length]]
            out[i, : len(ids)] = ids
        return out
