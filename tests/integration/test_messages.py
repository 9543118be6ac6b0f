"""Messages that keep their cause, through the real entrypoint: every text file a run reads,
written in another encoding, is named in one line; a model folder that does not exist is named
as a folder; `run(...threads=1)` gives the caller its thread count back."""

from __future__ import annotations

import shutil

import pytest
import torch

from swp.cli import run
from swp.testing.tiny import MICRO, compose_cfg, error_line, run_cli

LATIN1 = "caf\xe9: not UTF-8\n".encode("latin-1")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run folder, and one stopped right after pruning (its checkpoints kept)."""
    root = tmp_path_factory.mktemp("runs")
    run(compose_cfg(MICRO, root / "finished"))
    shutil.copytree(root / "finished", root / "stopped")
    for name in ("results.json", "model.safetensors", "masks.safetensors", "importance.safetensors"):
        (root / "stopped" / name).unlink()
    return root


def _newest(folder):
    return sorted((folder / "checkpoints").iterdir())[-1]


# Every text file a run reads: its data, and what it reads back from a run folder.
TEXT_FILES = {
    "data file": lambda root, tmp: tmp / "corpus.txt",
    "config.yaml": lambda root, tmp: tmp / "finished" / "config.yaml",
    "results.json": lambda root, tmp: tmp / "finished" / "results.json",
    "checkpoint manifest.json": lambda root, tmp: _newest(tmp / "stopped") / "manifest.json",
}


@pytest.mark.parametrize("which", list(TEXT_FILES))
def test_a_text_file_in_another_encoding_is_named(monkeypatch, capsys, tmp_path, finished, which):
    shutil.copytree(finished / "finished", tmp_path / "finished")
    shutil.copytree(finished / "stopped", tmp_path / "stopped")
    path = TEXT_FILES[which](finished, tmp_path)
    path.write_bytes(LATIN1 * 2000)
    if which == "data file":
        code, err = run_cli(monkeypatch, capsys, tmp_path / "new", "dataset=text_files",
                            f"dataset.text.paths=[{path}]")
    else:
        code, err = run_cli(monkeypatch, capsys, path.parent if which != "checkpoint manifest.json"
                            else tmp_path / "stopped")
    line = error_line(err)
    named = path if which == "data file" else path.parent
    assert code == 2 and str(named) in line and path.name in line, line


@pytest.mark.parametrize("model, dataset", [("hf_causal_lm", "hf_text")])
def test_a_model_folder_that_does_not_exist_is_named(monkeypatch, capsys, tmp_path, model, dataset):
    code, err = run_cli(monkeypatch, capsys, tmp_path / "run", f"model={model}", f"dataset={dataset}",
                        "model.name_or_path=/nonexistent/model", base=["threads=1", "progress=false"])
    line = error_line(err)
    assert code == 2 and "folder /nonexistent/model does not exist" in line and "Repo id" not in line


def test_run_gives_the_caller_its_thread_count_back(tmp_path):
    torch.set_num_threads(2)
    try:
        run(compose_cfg(MICRO + ["threads=1", "schedule.finetune_steps=0"], tmp_path / "run"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
