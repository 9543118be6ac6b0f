"""What a run folder may hold, and the check that a folder is a run's before a run writes there.

A run writes, truncates and removes files in its folder (a resume cuts metrics.jsonl back to the
checkpoint; success removes checkpoints/). So before it does, the folder must hold nothing but
the names below, none of them a link or a special file; a folder that holds anything else (a
user's notes, a model.safetensors of theirs, their project's config.yaml) is refused, not
overwritten. `config.yaml`, written before any other output, marks the folder as a run's.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

import yaml

from swp.infra.nofollow import refusal

# Every name a run (or Hydra, for its own run folder) may leave at the top of a run folder.
RUN_FILES = {
    "config.yaml": "the resolved config, written before any other output",
    "metrics.jsonl": "every logged metric, one JSON line each",
    "results.json": "the finished run's figures, written last",
    "error.json": "why the last attempt failed or stopped",
    "model.safetensors": "the final weights",
    "masks.safetensors": "the keep-masks",
    "importance.safetensors": "SWP's importance scores",
    "trajectories.npz": "the sampled weight histories (Figs. 1-2)",
    "fig1_trajectories.png": "Fig. 1",
    "fig2_patterns.png": "Fig. 2",
    "checkpoints": "the checkpoint folders",
    "wandb": "W&B's offline files (logger=wandb)",
    "export": "scripts/export.py's compressed export (its default --out)",
    ".lock": "the lock a running run holds",
    ".hydra": "Hydra's record of the job (when the folder is Hydra's)",
    "*.log": "Hydra's job log (when the folder is Hydra's)",
    ".*.tmp*": "a file being written, renamed into place when whole",
    ".write-test-*": "the probe that proves the folder writable",
}
# What exists before config.yaml: a folder holding only these is a fresh one (Hydra's run folder,
# or an earlier attempt refused before it wrote anything).
BEFORE_CONFIG = (".lock", "error.json", ".hydra", "*.log", ".*.tmp*", ".write-test-*")
# Keys every run's config.yaml has: a config.yaml without them is someone else's file.
RUN_KEYS = ("model", "dataset", "pruner", "schedule", "seed")
FIX = "use a new output_dir (or restore the file from a backup)"


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def link_problem(folder: Path) -> str | None:
    """The first link or special file at the top of `folder` or anywhere in its checkpoints/."""
    for entry in _entries(folder):
        if entry.is_dir(follow_symlinks=False):
            if entry.name == "checkpoints":
                for root, dirs, files in os.walk(entry.path):  # never descends into a linked folder
                    for path in (Path(root) / n for n in dirs + files):
                        st = os.lstat(path)
                        why = None if stat.S_ISDIR(st.st_mode) else refusal(path, st)
                        if why:
                            return why
            continue
        why = refusal(Path(entry.path), entry.stat(follow_symlinks=False))
        if why:
            return why
    return None


def folder_problem(folder: Path) -> str | None:
    """Why a run may not use `folder` (None when it may): a link or special file in it, a
    damaged or foreign config.yaml, or files that are not a run's."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    why = link_problem(folder)
    if why:
        return f"{why}; remove it or use a new output_dir"
    names = sorted(e.name for e in _entries(folder))
    if "config.yaml" not in names:
        return _before_config(folder, names)
    config, why = _run_config(folder / "config.yaml")
    if why:
        return f"output folder {folder} has a damaged config.yaml ({why}); {FIX}"
    if not all(k in config for k in RUN_KEYS):
        return (f"output folder {folder} holds a config.yaml that is not a run's (no {'/'.join(RUN_KEYS)}); "
                "a run would overwrite it: use a new output_dir")
    subdir = (config.get("export") or {}).get("subdir") if isinstance(config.get("export"), dict) else None
    foreign = [n for n in names if not _matches(n, RUN_FILES) and not (n == subdir and (folder / n).is_dir())]
    return _foreign(folder, foreign)


def _before_config(folder: Path, names: list[str]) -> str | None:
    """A folder without config.yaml may only hold what exists before a run writes it."""
    foreign = [n for n in names if not _matches(n, BEFORE_CONFIG)]
    if "results.json" in foreign:
        return (f"output folder {folder} holds results.json but no config.yaml, so it cannot say which "
                f"config it finished; {FIX}")
    return _foreign(folder, foreign)


def _foreign(folder: Path, names: list[str]) -> str | None:
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"output folder {folder} holds files that are not a run's ({shown}); a run would overwrite or "
            "remove them: use an empty or new output_dir")


def _run_config(path: Path) -> tuple[dict, str | None]:
    """config.yaml as a mapping, or the reason it is damaged (safe_load: reading never runs code)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, (" ".join(str(exc).split()[:30]) or type(exc).__name__)
    if not isinstance(config, dict):
        return {}, "not a mapping of settings"
    return config, None


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return list(it)
