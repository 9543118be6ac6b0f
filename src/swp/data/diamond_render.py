"""Deterministic top-view renderings of diamonds from their measured attributes.

The diamonds table has no photographs. This module draws what the table measures, so an image
model has something honest to look at: the outline from the length and width (x, y, in mm),
the table facet from `table` (% of the width), the brightness of the crown from `depth`
(% of the width; stones cut near 61.5% return the most light), a drop shadow whose offset
grows with the height z (mm), a tint from the colour grade (D colourless ... J yellowish) and
dark inclusions whose number follows the clarity grade, placed by a hash of the row id so the
same row always gives the same picture. Everything is vectorised over rows (NumPy).
"""

from __future__ import annotations

import numpy as np

COLOURS = ("D", "E", "F", "G", "H", "I", "J")  # best (colourless) to worst (tinted)
CLARITIES = ("IF", "VVS1", "VVS2", "VS1", "VS2", "SI1", "SI2", "I1")  # best to worst
INCLUSIONS = (0, 1, 2, 3, 4, 6, 8, 12)  # dark specks drawn for each clarity grade
_MAX_MM = 11.0  # the widest stone drawn at full size; a few bad rows (y = 58.9 mm) are clipped
_BACKGROUND = 0.12
_COLOURLESS = np.array([0.90, 0.95, 1.00])  # D: a faint blue-white
_YELLOW = np.array([1.00, 0.86, 0.52])  # J: a visible yellow body colour


def _hash_uniform(row_ids: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) from (row id, salt) by SplitMix64: no RNG state, so one row's
    picture never depends on which other rows are rendered with it."""
    z = row_ids.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15) + salt.astype(np.uint64)[None, :]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def render_diamonds(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    depth: np.ndarray,
    table: np.ndarray,
    colour: np.ndarray,
    clarity: np.ndarray,
    row_ids: np.ndarray,
    size: int = 32,
) -> np.ndarray:
    """Renders one RGB image per row.

    Args:
        x, y, z: length, width and height in mm.
        depth, table: total depth and table width, in % (as in the diamonds table).
        colour: colour grade indices into COLOURS (0 = D).
        clarity: clarity grade indices into CLARITIES (0 = IF).
        row_ids: a stable id per row (seeds the inclusions' positions).
        size: image side in pixels.

    Returns:
        uint8 array of shape (rows, size, size, 3).
    """
    n, px_per_mm = len(x), 0.92 * size / _MAX_MM
    f = lambda a: np.asarray(a, dtype=np.float32).reshape(n, 1, 1)  # noqa: E731 (broadcast helper)
    rx = np.clip(f(x), 0.5, _MAX_MM) * px_per_mm / 2
    ry = np.clip(f(y), 0.5, _MAX_MM) * px_per_mm / 2
    centre = (size - 1) / 2
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    du, dv = (u - centre) / rx, (v - centre) / ry  # coordinates in units of the stone's radii
    radius = np.sqrt(du**2 + dv**2)
    stone = radius <= 1.0
    # The table facet is an octagon whose half-width is table% of the stone's radius.
    octagon = np.maximum(np.maximum(np.abs(du), np.abs(dv)), (np.abs(du) + np.abs(dv)) / np.sqrt(2))
    table_face = octagon <= np.clip(f(table), 40, 80) / 100
    # Crown facets: eight sectors alternately lit, as a brilliant cut seen from above.
    # (The sector depends only on the direction from the centre, so it is computed once.)
    sector = np.floor((np.arctan2(v - centre, u - centre) + np.pi) / (np.pi / 4)).astype(np.int64) % 2
    light = np.clip(1.0 - np.abs(f(depth) - 61.5) / 12.0, 0.35, 1.0)  # light return vs depth %
    shade = np.where(table_face, 0.97, np.where(sector == 1, 0.80, 0.62)) * light
    # The drop shadow falls further from the stone as the stone gets taller (z).
    off = np.clip(f(z), 0.3, 7.0) * px_per_mm * 0.35
    shadow = np.sqrt(((u - centre - off) / rx) ** 2 + ((v - centre - off) / ry) ** 2) <= 1.0
    t = np.asarray(colour, dtype=np.float32).reshape(n, 1, 1, 1) / (len(COLOURS) - 1)
    tint = ((1 - t) * _COLOURLESS + t * _YELLOW).astype(np.float32)  # (n, 1, 1, 3)
    grey = np.where(shadow, np.float32(0.05), np.float32(_BACKGROUND))
    img = np.where(stone[..., None], shade[..., None] * tint, grey[..., None])
    _add_inclusions(img, tint, clarity, row_ids, centre, rx, ry, size)
    return np.rint(img * 255).astype(np.uint8)


def _add_inclusions(img: np.ndarray, tint: np.ndarray, clarity, row_ids, centre: float, rx: np.ndarray,
                    ry: np.ndarray, size: int) -> None:
    """Dark specks at hashed positions inside 80% of the outline, as many as the clarity grade has."""
    k = max(INCLUSIONS)
    count = np.asarray(INCLUSIONS)[np.asarray(clarity, dtype=np.int64)]
    ids = np.asarray(row_ids, dtype=np.int64)
    r = 0.8 * np.sqrt(_hash_uniform(ids, np.arange(k)))
    theta = 2 * np.pi * _hash_uniform(ids, np.arange(k, 2 * k))
    cols = np.rint(centre + r * np.cos(theta) * rx[:, 0, 0, None]).astype(np.int64).clip(0, size - 1)
    rows = np.rint(centre + r * np.sin(theta) * ry[:, 0, 0, None]).astype(np.int64).clip(0, size - 1)
    which, slot = np.nonzero(np.arange(k)[None, :] < count[:, None])
    img[which, rows[which, slot], cols[which, slot]] = 0.25 * tint[which, 0, 0]
