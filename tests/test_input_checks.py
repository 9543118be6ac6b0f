"""run(cfg)-level input checks: a ConfigError before any training, nothing written as if it succeeded."""

import pytest

from swp.cli import run
from swp.errors import ConfigError


@pytest.mark.parametrize(
    "override, message",
    [
        ("prune_rate=-0.5", "prune_rate must be a finite number >= 0"),
        ("prune_rate=nan", "prune_rate must be a finite number >= 0"),
        ("prune_rate=inf", "prune_rate must be a finite number >= 0"),
        ("prune_rate=abc", "prune_rate must be a number"),
        ("target_sparsity=1.0", "target_sparsity must be in"),
        ("target_sparsity=-0.1", "target_sparsity must be in"),
        ("target_sparsity=half", "target_sparsity must be a number"),
        ("pruner.include=[nothing_matches]", "include pattern 'nothing_matches' matches no prunable parameter"),
        ("model.block_size=100000", "block_size 100000 is longer than the"),
        ("device=tpu", "device must be auto, cpu or cuda"),
        ("precision=fp8", "precision must be fp32 or bf16"),
        ("pruner.scope=everywhere", "pruner.scope must be 'layer' or 'global'"),
        ("pruner.window=-2", "pruner.window must be null or >= 0"),
        ("pruner.average_of=median", "pruner.average_of must be"),
        ("schedule.track_every=0", "schedule.track_every and schedule.log_every must be >= 1"),
        ("schedule.train_steps=-5", "schedule.train_steps must be >= 0"),
    ],
)
def test_bad_input_fails_before_training(override, message, tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        run(tiny_cfg(override))
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_missing_and_empty_data_files(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="data file not found"):
        run(tiny_cfg("dataset=text_files", f"dataset.text.paths=[{tmp_path}/missing.txt]"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="data file is empty"):
        run(tiny_cfg("dataset=text_files", f"dataset.text.paths=[{empty}]"))


def test_local_text_files_train(tiny_cfg, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 400)
    r = run(tiny_cfg("dataset=text_files", f"dataset.text.paths=[{corpus}]", "schedule.train_steps=20"))
    assert r["dataset"] == "text_files" and r["val_loss"] < r["dense_val_loss"] + 1.0


def test_hf_datasets_source_reads_local_files_offline(tiny_cfg, tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(f"line {i}: all the world's a stage." for i in range(2000)))
    r = run(tiny_cfg("dataset=hf_chars", "dataset.text.name=text", "dataset.text.config=null",
                     f"dataset.text.data_files=[{corpus}]", "schedule.train_steps=10"))
    assert r["dataset"] == "hf_chars" and r["val_loss"] > 0


def test_hf_hub_name_offline_fails_with_one_line(tiny_cfg):
    with pytest.raises(ConfigError, match="cannot load dataset 'no-such/dataset'"):
        run(tiny_cfg("dataset=hf_chars", "dataset.text.name=no-such/dataset"))
