"""Burberry products with US prices (`DBQ/Burberry.Product.prices.United.States`, about 3,000
rows) as a price data set: the data of the public Phi-3-vision price fine-tuning recipe.

The Hub table holds each product's title, category codes, price and an image URL; images are
fetched from those URLs (network) into a local cache folder, once. A table that already holds
the images (an ``image`` column, as `datasets` Image features or bytes) is used as it is.
"""

from __future__ import annotations

import hashlib
import io
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from swp.config_types import Fraction, OpenFraction, Seed, check_arguments, checked_by
from swp.data.hf_corpus import open_split
from swp.data.price_examples import ImageSize, MaxRows, PriceExamples, check_split, split_rows
from swp.errors import ConfigError


def fetch_url(url: str, timeout: float = 20.0) -> bytes:
    """The bytes at `url` (the product photos are public CDN links)."""
    req = urllib.request.Request(url, headers={"User-Agent": "swp-price-data"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (URLs come from the data set)
        return resp.read()


def square_rgb(image: Any, size: int) -> np.ndarray:
    """A PIL image, encoded bytes, a {"bytes"/"path"} dict or a path, as a (size, size, 3)
    uint8 array: padded with white to a square (product shots sit on white), then resized."""
    from PIL import Image

    if isinstance(image, dict):
        image = image.get("bytes") or image.get("path")
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, (str, Path)):
        image = Image.open(image)
    image = image.convert("RGB")
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(image, ((side - image.size[0]) // 2, (side - image.size[1]) // 2))
    return np.asarray(canvas.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def product_text(title: str, category: str | None) -> str:
    """The text the model reads: the title and, where known, the category."""
    title = " ".join(str(title).split())
    return f"{title}. Category: {category}" if category else title


def rows_to_examples(
    rows: Iterable[dict],
    image_size: int,
    title_column: str = "title",
    category_column: str | None = "category3_code",
    price_column: str = "price",
    image_column: str = "image",
    url_column: str = "imageurl",
    fetch: Callable[[str], bytes] | None = None,
    image_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    max_rows: int | None = None,
    source: str = "burberry",
) -> PriceExamples:
    """Maps product rows to images, texts and prices; rows without a price > 0 or a readable
    image are skipped (their number is in `source`).

    Args:
        rows: dicts (a `datasets.Dataset` iterates as such).
        image_size: side of the square images.
        title_column, category_column, price_column: the text and target columns
            (category_column None: title only).
        image_column: a column with the images themselves, used when present.
        url_column: otherwise, image URLs, read with `fetch`.
        fetch: url -> bytes (default: HTTP); None with no image column is an error.
        image_dir: cache of fetched images (named by the URL's hash): a second run reads the disk.
        val_fraction, test_fraction, split_seed, max_rows: the seeded split (see `split_rows`).
        source: recorded with the results.
    """
    cache = Path(image_dir) if image_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    images, texts, prices, skipped = [], [], [], 0  # skipped: no price > 0, or no readable image
    for row in rows:
        price, pic = _row_price(row.get(price_column)), None
        if price is not None:
            pic = _row_image(row, image_column, url_column, fetch, cache, image_size)
        if pic is None:  # a bad row costs that row, not the run
            skipped += 1
            continue
        images.append(pic)
        texts.append(product_text(row.get(title_column, ""), row.get(category_column) if category_column else None))
        prices.append(price)
    if len(prices) < 3:
        raise ConfigError(f"only {len(prices)} usable products ({skipped} skipped: no price or no image)")
    split = split_rows(len(prices), val_fraction, test_fraction, split_seed, max_rows)
    return PriceExamples(images=np.stack(images), texts=texts, prices=np.asarray(prices, dtype=np.float64),
                         split=split, source=f"{source} ({skipped} rows skipped)" if skipped else source)


def _row_price(value) -> float | None:
    """The price as a float, None when it is missing, not a number or not above 0."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if np.isfinite(price) and price > 0 else None


def _row_image(row: dict, image_column: str, url_column: str, fetch, cache: Path | None, image_size: int):
    """The row's square RGB image, or None when it has none that can be read."""
    try:
        pic = row.get(image_column)
        if pic is None:
            url = row.get(url_column)
            if not url:
                return None
            pic = _cached_fetch(str(url), fetch, cache)
        return square_rgb(pic, image_size)
    except Exception:  # a dead link or a broken file costs one row, not the run
        return None


def _cached_fetch(url: str, fetch: Callable[[str], bytes] | None, cache: Path | None) -> bytes:
    path = cache / (hashlib.sha1(url.encode()).hexdigest() + ".img") if cache else None
    if path is not None and path.is_file():
        return path.read_bytes()
    if fetch is None:
        raise ValueError("image URLs need a fetch function")
    data = fetch(url)
    if path is not None:
        path.write_bytes(data)
    return data


@checked_by(check_split)
def burberry_examples(
    name: str = "DBQ/Burberry.Product.prices.United.States",
    split: str = "train",
    image_size: ImageSize = 336,
    image_dir: str | None = None,
    download_images: bool = True,
    title_column: str = "title",
    category_column: str | None = "category3_code",
    price_column: str = "price",
    max_rows: MaxRows | None = None,
    val_fraction: OpenFraction = 0.1,
    test_fraction: Fraction = 0.1,
    split_seed: Seed = 0,
) -> PriceExamples:
    """Loads the table through `datasets` (Hub name or local folder) and maps it.

    Args:
        name: Hub id or a local folder of data files with the same columns.
        split: the table's split (the Hub table has only "train"; we split it ourselves).
        image_size: side of the square images.
        image_dir: cache of downloaded images (default: <HF_HOME or ~/.cache>/swp/burberry_images).
        download_images: fetch images from their URLs when the table has no image column.
        title_column, category_column, price_column: the text and target columns (see `rows_to_examples`).
        max_rows, val_fraction, test_fraction, split_seed: the seeded split (see `split_rows`).
    """
    check_arguments(burberry_examples, locals(), at="dataset.examples")
    import os

    ds = open_split(name, None, split)
    if image_dir is None:
        image_dir = str(Path(os.environ.get("HF_HOME", Path.home() / ".cache")) / "swp" / "burberry_images")
    return rows_to_examples(
        ds, image_size, title_column=title_column, category_column=category_column, price_column=price_column,
        fetch=fetch_url if download_images else None, image_dir=image_dir, val_fraction=val_fraction,
        test_fraction=test_fraction, split_seed=split_seed, max_rows=max_rows, source=name,
    )
