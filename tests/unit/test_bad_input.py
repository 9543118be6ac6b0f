"""Every row of the README's bad-input table: a one-line error naming what to fix, a non-zero
exit, and no results.json. Runs the real entrypoint (`swp.cli.hydra_app()`, in-process)."""

from __future__ import annotations

import pytest
import torch


def test_write_failure_that_is_not_a_full_disk_is_not_disguised(tmp_path):
    """A bug in a writer (not a disk problem) keeps its own error and traceback."""
    from swp.infra.io import write_atomic

    def buggy(tmp):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        write_atomic(tmp_path / "x.bin", buggy)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Over-pruning warns


def test_pruning_a_whole_tensor_warns_and_max_sparsity_allows_it(capsys):
    from swp.pruners.guardrails import overpruned, warn_overpruned

    keep = {
        "a": torch.ones(100, dtype=torch.bool),
        "b": torch.zeros(100, dtype=torch.bool),
        "c": torch.arange(1000) < 5,
    }
    assert overpruned(keep, 0.99) == {"b": 1.0, "c": pytest.approx(0.995)}
    found = warn_overpruned(keep, 0.99)
    err = capsys.readouterr().err.strip().splitlines()
    assert set(found) == {"b", "c"} and len(err) == 1
    assert err[0].startswith("warning: 2 tensor(s) pruned beyond max_sparsity=0.99 (b 100.0%, c 99.5%)")
    assert "set max_sparsity=1.0 to allow it" in err[0]
    assert warn_overpruned(keep, 1.0) == {} and capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Export trusts nothing in the run folder


def _export(capsys, *argv):
    from scripts import export as export_script

    with pytest.raises(SystemExit) as info:
        export_script.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return info.value.code, err


def test_export_hf_folder_takes_the_architecture_from_the_command(capsys, tmp_path):
    """The save_pretrained export builds the model named by --hf-config (trust_remote_code off),
    with the run's weights; a config that does not fit the weights is one line, exit 2."""
    from safetensors.torch import save_file, save_model
    from transformers import GPT2Config, GPT2LMHeadModel

    from scripts import export as export_script

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    name = "transformer.h.0.mlp.c_fc.weight"
    keep = torch.rand(model.get_parameter(name).shape) > 0.5
    with torch.no_grad():
        model.get_parameter(name).mul_(keep)
    folder, arch = tmp_path / "run", tmp_path / "arch"
    folder.mkdir()
    save_model(model, str(folder / "model.safetensors"))
    save_file({name: keep}, str(folder / "masks.safetensors"))
    (folder / "results.json").write_text("{}")
    config.save_pretrained(arch)
    report = export_script.main([str(folder), "--hf-config", str(arch)])
    reloaded = GPT2LMHeadModel.from_pretrained(report["hf_dir"]).eval()
    assert torch.equal(reloaded.get_parameter(name), model.get_parameter(name))
    other = tmp_path / "other"
    GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=1, n_head=2).save_pretrained(other)
    code, err = _export(capsys, folder, "--out", tmp_path / "e2", "--hf-config", other)
    assert code == 2 and "does not fit --hf-config" in err and not (tmp_path / "e2").exists()
