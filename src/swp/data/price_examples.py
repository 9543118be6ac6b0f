"""The common shape of a price data set (image, text, price) and its fixed, seeded split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol, Sequence

import numpy as np

from swp.config_types import Options, Range
from swp.errors import ConfigError

MaxRows = Annotated[int, Range(3)]  # a split needs a training, a validation and a test row
ImageSize = Annotated[int, Range(8, 4096)]  # pixels per side


def check_split(given: Options) -> None:
    """The cross-field rule of every price data set's split: some rows are left for training."""
    if given.val_fraction + given.test_fraction >= 1:
        raise ConfigError(
            f"{given.key('val_fraction')} must leave training rows: val_fraction + test_fraction < 1; "
            f"got {given.val_fraction!r} + {given.test_fraction!r}"
        )


class ImageSource(Protocol):
    """Anything indexable by an integer array that returns uint8 images (n, H, W, 3):
    a NumPy array, or a renderer that draws the rows on demand."""

    def __getitem__(self, idx: np.ndarray) -> np.ndarray: ...

    def __len__(self) -> int: ...


@dataclass
class PriceExamples:
    """Products with an image, a text and a price, split once into train/val/test.

    Attributes:
        images: uint8 RGB images, (n, H, W, 3), indexable by row arrays.
        texts: one description per row.
        prices: price per row in dollars (float64, > 0).
        split: row indices of "train", "val" and "test" (disjoint, fixed by a seed).
        source: a short name recorded with the results.
    """

    images: ImageSource
    texts: Sequence[str]
    prices: np.ndarray
    split: dict[str, np.ndarray]
    source: str

    @property
    def image_size(self) -> int:
        return int(self.images[np.arange(1)].shape[1])


def split_rows(
    n: int, val_fraction: float, test_fraction: float, seed: int, max_rows: int | None = None
) -> dict[str, np.ndarray]:
    """A seeded permutation of the rows cut into train/val/test (each in permuted order).

    The permutation depends only on (n, seed), so the same rows are held out in every run of
    a sweep whatever the training seed; `max_rows` keeps a prefix of that permutation (quick
    runs) before cutting, so a capped run is a random sample, not the head of the table.
    """
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) and sum below 1"
        )
    order = np.random.default_rng(seed).permutation(n)
    if max_rows is not None:
        if max_rows < 3:
            raise ConfigError(f"max_rows must be at least 3, got {max_rows}")
        order = order[:max_rows]
    n_val = max(1, int(round(len(order) * val_fraction)))
    n_test = int(round(len(order) * test_fraction))
    if len(order) - n_val - n_test < 1:
        raise ConfigError(f"{len(order)} rows leave no training rows after the val/test split")
    # Kept in permutation order (not sorted): tables are often sorted by price (diamonds is),
    # so the first k validation rows (eval_examples=k) must be a random sample, not the cheapest.
    return {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
