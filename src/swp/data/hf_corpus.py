"""One split of a text dataset through `datasets`, joined into the string a tokenizer reads."""

from __future__ import annotations

from typing import Mapping, Sequence

from swp.errors import ConfigError, one_line


def open_split(path: str, name: str | None, split: str, data_files=None, revision: str | None = None):
    """One split of a dataset through `datasets.load_dataset`, its failures as one ConfigError line.

    Every loader in swp (token corpora, character corpora, the price table) opens its data
    here, so offline behaviour and the error a user sees are the same for all of them.
    """
    import datasets  # imported here: only the Hugging Face tasks pay its start-up cost

    try:
        return datasets.load_dataset(path, name, split=split, data_files=data_files, revision=revision)
    except Exception as exc:  # the library raises many types; the user needs one line
        raise ConfigError(f"cannot load dataset {path!r} ({name}, split {split!r}): {one_line(exc)}") from exc


def load_split_text(
    path: str,
    name: str | None,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    column: str = "text",
    join: str = "\n\n",
    max_chars: int | None = None,
    revision: str | None = None,
    skip_empty: bool = False,
) -> str:
    """Loads one split and joins its rows.

    The perplexity protocol of the pruning literature (SparseGPT, Wanda) joins WikiText's rows
    with a blank line, empty rows included, and tokenizes the result as one stream; keeping
    every row is what makes the numbers comparable.

    Args:
        path: a Hub dataset (``Salesforce/wikitext``), a local folder, or a builder for local
            files (``text``, ``json``, ``parquet``) together with ``data_files``.
        name: the dataset's configuration (``wikitext-2-raw-v1``), or None.
        split: e.g. ``train``, ``validation``, ``test``, or a slice (``train[:10%]``).
        data_files: local files for a builder path, e.g. ``{train: a.txt, test: b.txt}``.
        column: the text column.
        join: the separator between rows.
        max_chars: cut the joined text (quick runs); None keeps all of it.
        revision: a Hub branch, tag or commit.
        skip_empty: drop empty rows before joining (character corpora); the perplexity
            protocol keeps them.

    Raises:
        ConfigError: the dataset cannot be loaded, lacks the column, or holds no text.
    """
    ds = open_split(path, name, split, data_files, revision)
    if column not in ds.column_names:
        raise ConfigError(f"dataset {path!r} has no column {column!r}; it has {ds.column_names}")
    text = join.join(t for t in ds[column] if t or not skip_empty)
    if not text.strip():
        raise ConfigError(f"dataset {path!r} split {split!r} holds no text")
    return text[:max_chars] if max_chars else text
