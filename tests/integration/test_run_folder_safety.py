"""A run folder cannot be turned against its user: every name a run may find in its folder,
planted as a symbolic link, a hard link or a FIFO, is refused before anything is written (the
file it points at is untouched); a folder that holds files that are not a run's is refused, not
overwritten; a folder deleted while the run writes it ends the run with one line, never exit 0."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from swp.infra.run_files import BEFORE_CONFIG, RUN_FILES, folder_problem
from swp.run import Run
from swp.stages import Stage
from swp.testing.tiny import error_line, run_cli

PID = os.getpid()  # the tests run the CLI in this process: its temporaries carry this pid
EXAMPLES = {"*.log": "train.log", ".*.tmp*": f".results.{PID}.tmp.json", ".write-test-*": f".write-test-{PID}"}
# Every name of RUN_FILES (a pattern by an example), and a file inside a checkpoint.
NAMES = [EXAMPLES.get(n, n) for n in RUN_FILES] + ["checkpoints/<newest>/state.pt"]
FOLDERS = ("checkpoints", "wandb", "export", ".hydra")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run folder stopped by SIGTERM in fine-tuning (config, metrics, checkpoints, error.json)."""
    mp, folder = pytest.MonkeyPatch(), tmp_path_factory.mktemp("interrupted") / "run"
    from swp.cli import run
    from swp.testing.tiny import MICRO, compose_cfg

    original = Run.save_checkpoint

    def stop_in_finetuning(self, at, *args, **kwargs):
        if at == Stage.FINETUNE:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, at, *args, **kwargs)

    mp.setattr(Run, "save_checkpoint", stop_in_finetuning)
    with pytest.raises(Exception, match="SIGTERM"):
        run(compose_cfg(MICRO, folder))
    mp.undo()
    return folder


def _copy(interrupted: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(interrupted, tmp_path / "run", symlinks=True))


def _target(folder: Path, name: str) -> Path:
    if name.startswith("checkpoints/<newest>/"):
        return sorted((folder / "checkpoints").iterdir())[-1] / name.rsplit("/", 1)[1]
    return folder / name


def _plant(path: Path, kind: str, victim: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    if kind == "symlink":
        path.symlink_to(victim, target_is_directory=victim.is_dir())
    elif kind == "hard link":
        os.link(victim, path)
    else:
        os.mkfifo(path)


def _victim(tmp_path: Path, name: str) -> Path:
    """What a planted link points at: the user's file (or folder) outside the run folder."""
    if name in FOLDERS:
        victim = tmp_path / "elsewhere"
        victim.mkdir()
        (victim / "precious.txt").write_text("the user's own data\n")
        return victim
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own data\n")
    return victim


def _snapshot(victim: Path):
    files = sorted(victim.rglob("*")) if victim.is_dir() else [victim]
    return [(p.name, p.read_bytes(), p.stat().st_mtime_ns) for p in files]


# A folder cannot be hard-linked, and a FIFO is tried under the file names.
PLANTED = [(n, k) for n in NAMES for k in ("symlink", "hard link", "fifo") if k == "symlink" or n not in FOLDERS]


@pytest.mark.parametrize("name, kind", PLANTED, ids=[f"{n}-{k}" for n, k in PLANTED])
def test_a_planted_link_is_refused_and_its_target_untouched(monkeypatch, capsys, tmp_path, interrupted, name, kind):
    folder = _copy(interrupted, tmp_path)
    victim = _victim(tmp_path, name)
    before = _snapshot(victim)
    _plant(_target(folder, name), kind, victim)
    code, err = run_cli(monkeypatch, capsys, folder)
    line = error_line(err)
    what = {"symlink": "is a symbolic link", "hard link": "hard links", "fifo": "is not a plain file"}[kind]
    assert code == 2 and what in line and "use a new output_dir" in line
    assert _snapshot(victim) == before
    assert name == "results.json" or not os.path.lexists(folder / "results.json")


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("checkpoints/")])
def test_a_folder_that_is_not_a_runs_is_refused_not_overwritten(monkeypatch, capsys, tmp_path, name):
    """The user's own file under a name a run writes (or would remove), without the config.yaml
    a run writes first: refused, unless it is one a fresh run folder holds (Hydra's, a lock)."""
    folder = tmp_path / "theirs"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    if name in FOLDERS:
        (folder / name).mkdir()
        (folder / name / "notes.txt").write_text("mine\n")
    else:
        (folder / name).write_text("mine\n")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    fresh = any(Path(name).match(p) for p in BEFORE_CONFIG)
    assert (folder_problem(folder) is None) == fresh
    if fresh:
        return
    code, err = run_cli(monkeypatch, capsys, folder)
    line = error_line(err)
    assert code == 2 and any(why in line for why in ("not a run's", "no config.yaml", "damaged config.yaml")), line
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in folder.iterdir()) == sorted({name.split("/")[0]})  # nothing added


def test_a_users_model_and_notes_are_not_overwritten(monkeypatch, capsys, tmp_path):
    """The issue's example: an output_dir holding a model.safetensors of theirs and their notes."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"their weights")
    (folder / "notes.md").write_text("my notes\n")
    code, err = run_cli(monkeypatch, capsys, folder)
    line = error_line(err)
    assert code == 2 and "holds files that are not a run's (model.safetensors, notes.md)" in line
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "notes.md"]
    assert (folder / "model.safetensors").read_bytes() == b"their weights"


def test_a_projects_config_yaml_is_not_overwritten(monkeypatch, capsys, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("learning_rate: 0.1\n")
    code, err = run_cli(monkeypatch, capsys, folder)
    assert code == 2 and "holds a config.yaml that is not a run's" in error_line(err)
    assert (folder / "config.yaml").read_text() == "learning_rate: 0.1\n"


def test_a_metrics_file_changed_after_the_checkpoint_is_not_truncated(monkeypatch, capsys, tmp_path, interrupted):
    folder = _copy(interrupted, tmp_path)
    metrics = folder / "metrics.jsonl"
    edited = metrics.read_bytes().replace(b'"step": 5', b'"step": 9', 1)
    metrics.write_bytes(edited)
    code, err = run_cli(monkeypatch, capsys, folder)
    assert code == 2 and "recorded other lines" in error_line(err)
    assert metrics.read_bytes() == edited


@pytest.mark.parametrize("deleted", ["run folder", "metrics.jsonl"])
@pytest.mark.parametrize("stage", list(Stage), ids=[s.label for s in Stage])
def test_a_folder_deleted_while_the_run_writes_it_ends_in_one_line(monkeypatch, capsys, tmp_path, stage, deleted):
    """Deleted just before the first checkpoint of each stage: exit 1 and one line, never exit 0
    with the metric lines lost (a deleted folder would be made again by the next write)."""
    folder = tmp_path / "run"
    original = Run.save_checkpoint

    def delete_then_save(self, at, *args, **kwargs):
        if at == stage and folder.exists() and (folder / "metrics.jsonl").exists():
            shutil.rmtree(folder) if deleted == "run folder" else (folder / "metrics.jsonl").unlink()
        return original(self, at, *args, **kwargs)

    monkeypatch.setattr(Run, "save_checkpoint", delete_then_save)
    code, err = run_cli(monkeypatch, capsys, folder)
    line = error_line(err)
    assert code == 1 and ("vanished" in line or "was deleted" in line), line
    assert not (folder / "results.json").exists()


def test_every_name_a_run_leaves_is_declared(tmp_path):
    """RUN_FILES is complete: a finished run (figures, trajectories, kept checkpoints) and its
    compressed export leave only declared names, and the folder is still a run's."""
    from fnmatch import fnmatchcase

    from swp.cli import run
    from swp.testing.tiny import MICRO, compose_cfg, load_script

    folder = tmp_path / "run"
    run(compose_cfg(MICRO + ["trajectories.per_tensor=4"], folder))
    load_script("export").main([str(folder)])
    names = sorted(p.name for p in folder.iterdir())
    assert {"fig1_trajectories.png", "checkpoints", "export", "results.json"} <= set(names)
    assert [n for n in names if not any(fnmatchcase(n, p) for p in RUN_FILES)] == []
    assert folder_problem(folder) is None
