"""One split of a text dataset through `datasets`, joined into the string a tokenizer reads."""

from __future__ import annotations

from typing import Mapping, Sequence

from swp.errors import ConfigError


def load_split_text(
    path: str,
    name: str | None,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    column: str = "text",
    join: str = "\n\n",
    max_chars: int | None = None,
    revision: str | None = None,
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

    Raises:
        ConfigError: the dataset cannot be loaded, lacks the column, or holds no text.
    """
    import datasets  # imported here: only the Hugging Face tasks pay its start-up cost

    try:
        ds = datasets.load_dataset(path, name, split=split, data_files=data_files, revision=revision)
    except Exception as exc:  # the library raises many types; the user needs one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot load dataset {path!r} ({name}, split {split!r}): {first}") from exc
    if column not in ds.column_names:
        raise ConfigError(f"dataset {path!r} has no column {column!r}; it has {ds.column_names}")
    text = join.join(ds[column])
    if not text.strip():
        raise ConfigError(f"dataset {path!r} split {split!r} holds no text")
    return text[:max_chars] if max_chars else text
