"""The price experiment: renderer, split, vocabulary, Burberry mapping, and a real tiny run."""

from __future__ import annotations

import io

import numpy as np
import pytest

from swp.data.burberry import burberry_examples, rows_to_examples
from swp.data.diamond_render import CLARITIES, COLOURS, render_diamonds
from swp.data.diamonds import diamond_examples
from swp.data.price_examples import split_rows
from swp.data.words import WordVocab
from swp.errors import ConfigError

# A typical stone (0.7 carat: 5.7 x 5.7 x 3.5 mm, depth 61.5%, table 57%, G, VS2).
STONE = dict(x=5.7, y=5.7, z=3.5, depth=61.5, table=57.0, colour=3, clarity=4, row_ids=7)


def render(n=1, **change):
    attrs = {k: np.full(n, change.get(k, v)) for k, v in STONE.items()}
    return render_diamonds(**attrs, size=32)


def test_renderer_is_deterministic_and_batch_independent():
    rows = {k: np.asarray([v, v * 1.3 if k in "xyz" else v, v]) for k, v in STONE.items()}
    rows["row_ids"] = np.asarray([7, 8, 9])
    together = render_diamonds(**rows, size=32)
    alone = render_diamonds(**{k: v[1:2] for k, v in rows.items()}, size=32)
    assert together.dtype == np.uint8 and together.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(render_diamonds(**rows, size=32), together)
    np.testing.assert_array_equal(alone[0], together[1])  # a row's picture ignores its neighbours


def test_renderer_images_follow_the_attributes():
    base = render()[0].astype(int)
    lit = lambda img: int((img.sum(-1) > 3 * 0.3 * 255).sum())  # noqa: E731 (bright stone pixels)
    assert lit(render(x=8.0, y=8.0)[0]) > lit(base) + 50  # a bigger stone covers more pixels
    j, d = render(colour=COLOURS.index("J"))[0].astype(int), render(colour=COLOURS.index("D"))[0].astype(int)
    assert (j[..., 0] - j[..., 2]).mean() > (d[..., 0] - d[..., 2]).mean() + 5  # J is yellower than D
    dark = lambda img: int((img.astype(int).sum(-1) < 3 * 0.3 * 255).sum())  # noqa: E731
    flawless, included = render(clarity=CLARITIES.index("IF"))[0], render(clarity=CLARITIES.index("I1"))[0]
    assert dark(included) > dark(flawless)  # more inclusions, more dark specks
    for change in (dict(table=65.0), dict(depth=66.0), dict(z=5.0), dict(row_ids=8)):
        assert not np.array_equal(render(**change)[0], base), change


def test_split_is_fixed_disjoint_and_seeded():
    a, b = split_rows(1000, 0.1, 0.1, seed=0), split_rows(1000, 0.1, 0.1, seed=0)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(a[part], b[part])
    assert [len(a[p]) for p in ("train", "val", "test")] == [800, 100, 100]
    assert len(np.unique(np.concatenate(list(a.values())))) == 1000
    assert not np.array_equal(split_rows(1000, 0.1, 0.1, seed=1)["val"], a["val"])
    # The diamonds split itself, pinned: these stones are validation rows in every run.
    ex = diamond_examples(image_size=16)
    assert ex.split["val"][:5].tolist() == [9834, 14421, 45464, 51752, 17967]
    assert [len(ex.split[p]) for p in ("train", "val", "test")] == [43152, 5394, 5394]
    assert ex.texts[0] == "0.23 carat round diamond, ideal cut, colour E, clarity SI2, depth 61.5%, table 55%"
    with pytest.raises(ConfigError, match="sum below 1"):
        split_rows(10, 0.6, 0.5, seed=0)
    with pytest.raises(ConfigError, match="max_rows"):
        split_rows(10, 0.1, 0.1, seed=0, max_rows=2)


def test_word_vocab_pads_and_marks_unknown_words():
    vocab = WordVocab(["a red coat", "a red scarf", "a bag 12.5"], max_size=5)
    assert vocab.itos == ["<pad>", "<unk>", "a", "red", "12.5"]
    assert vocab.encode(["Red coat 12.5", "a"], 4).tolist() == [[3, 1, 4, 0], [2, 0, 0, 0]]


def _png(colour) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (30, 40), colour).save(buf, format="PNG")
    return buf.getvalue()


# Rows shaped like DBQ/Burberry.Product.prices.United.States (a few of its columns).
ROWS = [
    {"title": "Check Cashmere Scarf", "category3_code": "SCARVES", "price": 590.0, "full_price": 590.0,
     "imageurl": f"https://assets.example/{i}.jpg", "brand": "Burberry"}
    for i in range(9)
] + [{"title": "Broken", "category3_code": "BAGS", "price": None, "imageurl": "https://assets.example/x.jpg"},
     {"title": "Dead link", "category3_code": "BAGS", "price": 10.0, "imageurl": "https://assets.example/dead.jpg"}]


def test_burberry_mapping_on_a_local_fixture(tmp_path):
    photos = {r["imageurl"]: _png((20 * i, 0, 0)) for i, r in enumerate(ROWS[:9])}
    fetched = []

    def fetch(url):
        fetched.append(url)
        if url not in photos:
            raise OSError("404")
        return photos[url]

    ex = rows_to_examples(ROWS, image_size=24, fetch=fetch, image_dir=tmp_path / "img", split_seed=0)
    assert ex.images.shape == (9, 24, 24, 3) and len(ex.texts) == 9
    assert ex.texts[0] == "Check Cashmere Scarf. Category: SCARVES"
    assert ex.prices.tolist() == [590.0] * 9 and "2 rows skipped" in ex.source
    assert ex.images[3, 12, 12].tolist() == [60, 0, 0]  # the photo, padded to a square with white
    assert ex.images[3, 12, 0].tolist() == [255, 255, 255]
    # A second pass reads the cache, not the network.
    again = rows_to_examples(ROWS, image_size=24, fetch=fetch, image_dir=tmp_path / "img")
    assert len(fetched) == 10 + 1  # only the dead link is asked for again
    np.testing.assert_array_equal(again.images, ex.images)


def test_burberry_loader_reads_a_local_table_with_images(tmp_path):
    import datasets

    table = datasets.Dataset.from_dict(
        {"title": [f"Trench {i}" for i in range(6)], "category3_code": ["COATS"] * 6,
         "price": [1890.0 + i for i in range(6)], "image": [_png((0, 40 * i, 0)) for i in range(6)]}
    )
    table = table.cast_column("image", datasets.Image())
    table.to_parquet(str(tmp_path / "table" / "train.parquet"))
    ex = burberry_examples(
        name=str(tmp_path / "table"), image_size=16, download_images=False, val_fraction=0.34, test_fraction=0.0
    )
    assert ex.images.shape == (6, 16, 16, 3) and ex.prices[2] == 1892.0 and ex.texts[5] == "Trench 5. Category: COATS"
    assert [len(ex.split[p]) for p in ("train", "val", "test")] == [4, 2, 0]


