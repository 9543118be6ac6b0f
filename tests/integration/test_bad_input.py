"""Every row of the README's bad-input table: a one-line error naming what to fix, a non-zero
exit, and no results.json. Runs the real entrypoint (`swp.cli.hydra_app()`, in-process)."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest
import torch

from swp import cli as swp_cli
from swp.infra import checkpoint as checkpoint_module
from swp.logging.base import Logger
from swp.testing.tiny import CONF, TINY

# Shorter than the tiny run: these tests are about the errors, not the numbers.
SHORT = ["schedule.train_steps=30", "schedule.finetune_steps=10", "dataset.eval_batches=2"]


def cli(monkeypatch, capsys, out, *overrides, hydra_dir=None):
    """Runs `python train.py <tiny> <overrides>`; returns (exit status, stderr)."""
    hydra_dir = hydra_dir or out.parent / "hydra"
    argv = [
        "train.py",
        f"--config-path={CONF}",
        *TINY,
        *SHORT,
        f"output_dir={out}",
        f"hydra.run.dir={hydra_dir}",
        *overrides,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        swp_cli.hydra_app()()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


CUDA = torch.cuda.is_available()


# One row per bad input, merged from the run(cfg) and CLI tables: each runs the real entrypoint
# and must give exit 2 (a ConfigError), one `error:` line naming the fix, and nothing trained.
# Values refused by swp.validation say `<key> must be ...; got ...`; the rest come from the parts.
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prune_rate=abc"], "prune_rate must be a finite number in [0, 100]"),
        (["prune_rate=-1"], "prune_rate must be a finite number in [0, 100]"),
        (["prune_rate=-0.5"], "prune_rate must be a finite number in [0, 100]"),
        (["prune_rate=nan"], "prune_rate must be a finite number in [0, 100]"),
        (["prune_rate=inf"], "prune_rate must be a finite number in [0, 100]"),
        (["target_sparsity=1.5"], "target_sparsity must be a finite number in [0, 1) or null"),
        (["target_sparsity=1.0"], "target_sparsity must be a finite number in [0, 1) or null"),
        (["target_sparsity=-0.1"], "target_sparsity must be a finite number in [0, 1) or null"),
        (["target_sparsity=half"], "target_sparsity must be a finite number in [0, 1) or null"),
        (["target_sparsity=0.9999999"], "target_sparsity must be <= max_sparsity (0.99)"),
        (["device=tpu"], "device must be a device name (auto, cpu, cuda or cuda:N)"),
        pytest.param(["device=cuda"], "CUDA is not available", marks=pytest.mark.skipif(CUDA, reason="has CUDA")),
        (["precision=fp8"], "precision must be one of fp32, bf16"),
        (["seed=-1"], "seed must be an integer >= 0"),
        (["threads=0"], "threads must be an integer in [1, 4096]"),
        (["dataset.text.max_chars=100"], "block_size 32 is longer than the validation text"),
        (["model.block_size=100000"], "block_size 100000 is longer than the"),
        (["dataset.text.genres=[nope]"], "no plays found"),
        (["dataset=text_files"], "required setting(s) not given: dataset.text.paths"),
        (["dataset=text_files", "dataset.text.paths=[/nonexistent.txt]"], "data file not found"),
        (["dataset=hf_chars", "dataset.text.name=no-such/dataset"], "cannot load dataset 'no-such/dataset'"),
        (["dataset.val_fraction=1.5"], "dataset.val_fraction must be a finite number in (0, 1)"),
        (["dataset.eval_batches=0"], "dataset.eval_batches must be an integer >= 1"),
        (["pruner.include=[nomatch]"], "include pattern 'nomatch' matches no prunable parameter"),
        (["pruner.include=[nothing_matches]"], "include pattern 'nothing_matches' matches no prunable parameter"),
        (["pruner.include=qkv"], "pruner.include must be a list of strings (e.g. [qkv]) or null"),
        (["pruner.scope=bad"], "pruner.scope must be one of layer, global"),
        (["pruner.scope=everywhere"], "pruner.scope must be one of layer, global"),
        (["pruner.window=-2"], "pruner.window must be an integer >= 0 or null"),
        (["pruner.average_of=median"], "pruner.average_of must be one of magnitude, signed"),
        (["pruner.state_device=gpu"], "pruner.state_device must be a device name"),
        (["schedule.train_steps=-1"], "schedule.train_steps must be an integer >= 0"),
        (["schedule.train_steps=-5"], "schedule.train_steps must be an integer >= 0"),
        (["schedule.track_every=0"], "schedule.track_every must be an integer >= 1"),
        (["schedule.lr=nan"], "schedule.lr must be a finite number in (0, 1]"),
        (["schedule.beta1=1.0"], "schedule.beta1 must be a finite number in [0, 1)"),
        (["schedule.weight_decay=-0.1"], "schedule.weight_decay must be a finite number >= 0"),
        (["trajectories.show=0"], "trajectories.show must be an integer >= 1"),
        (["checkpoint.every=-1"], "checkpoint.every must be an integer >= 0"),
        (["checkpoint.keep=0"], "checkpoint.keep must be an integer >= 1"),
    ],
)
def test_config_errors(monkeypatch, capsys, tmp_path, overrides, message):
    code, err = cli(monkeypatch, capsys, tmp_path / "run", *overrides)
    assert code == 2 and message in _one_line_error(err)
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_empty_data_file(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "dataset=text_files", f"dataset.text.paths=[{empty}]")
    assert code == 2 and "data file is empty" in _one_line_error(err)
    assert not (tmp_path / "run" / "results.json").exists()


def test_local_text_files_train(tiny_cfg, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 400)
    r = swp_cli.run(tiny_cfg("dataset=text_files", f"dataset.text.paths=[{corpus}]", "schedule.train_steps=20"))
    assert r["dataset"] == "text_files" and r["val_loss"] < r["dense_val_loss"] + 1.0


def test_hf_datasets_source_reads_local_files_offline(tiny_cfg, tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(f"line {i}: all the world's a stage." for i in range(2000)))
    r = swp_cli.run(
        tiny_cfg(
            "dataset=hf_chars",
            "dataset.text.name=text",
            "dataset.text.config=null",
            f"dataset.text.data_files=[{corpus}]",
            "schedule.train_steps=10",
        )
    )
    assert r["dataset"] == "hf_chars" and r["val_loss"] > 0


def test_unwritable_output_folder(monkeypatch, capsys, tmp_path):
    (tmp_path / "a_file").write_text("x")  # a folder inside a file cannot be made, even by root
    code, err = cli(monkeypatch, capsys, tmp_path / "a_file" / "run", hydra_dir=tmp_path / "hydra")
    assert code == 2 and "output folder" in _one_line_error(err) and "is not writable" in err


@pytest.fixture
def interrupted(monkeypatch, capsys, tmp_path):
    """A run folder whose run stopped in fine-tuning (a crash), with two checkpoints left."""
    from swp.tasks.char_lm import CharLMTask

    original, calls = CharLMTask.train_batch, [0]

    def crash_in_finetuning(self, *args):
        calls[0] += 1
        if calls[0] == 35:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(CharLMTask, "train_batch", crash_in_finetuning)
    with pytest.raises(KeyboardInterrupt):
        cli(monkeypatch, capsys, tmp_path / "run", "checkpoint.every=12")
    monkeypatch.setattr(CharLMTask, "train_batch", original)
    capsys.readouterr()
    folder = tmp_path / "run"
    assert json.loads((folder / "error.json").read_text())["type"] == "KeyboardInterrupt"
    return folder


def test_resume_with_a_different_model_shape(monkeypatch, capsys, interrupted):
    code, err = cli(monkeypatch, capsys, interrupted, "model.n_embd=64")
    line = _one_line_error(err)
    assert code == 2 and "different config (model.n_embd: 32 -> 64)" in line and "000000030-2-pruned" in line


def test_resume_with_another_pruner(monkeypatch, capsys, interrupted):
    code, err = cli(monkeypatch, capsys, interrupted, "pruner=magnitude")
    assert (
        code == 2
        and "pruner._target_: swp.pruners.swp.SWPPruner -> swp.pruners.simple.MagnitudePruner" in _one_line_error(err)
    )


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "incomplete"])
def test_damaged_checkpoint_is_reported_never_loaded(monkeypatch, capsys, interrupted, damage):
    newest = sorted((interrupted / "checkpoints").iterdir())[-1]
    if damage == "corrupt":
        data = bytearray((newest / "state.pt").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (newest / "state.pt").write_bytes(bytes(data))
    elif damage == "truncated":
        with open(newest / "model.safetensors", "r+b") as f:
            f.truncate(100)
    else:
        (newest / "manifest.json").unlink()
    code, err = cli(monkeypatch, capsys, interrupted)
    line = _one_line_error(err)
    assert code == 2 and f"checkpoint {newest} is {damage}" in line and "delete it" in line
    assert not (interrupted / "results.json").exists()
    if damage != "corrupt":
        return
    # Following the advice resumes from the one before it, and the run completes.
    import shutil

    shutil.rmtree(newest)
    code, err = cli(monkeypatch, capsys, interrupted)
    assert code == 0 and (interrupted / "results.json").exists() and not (interrupted / "error.json").exists()


def test_full_disk_while_checkpointing(monkeypatch, capsys, tmp_path):
    calls = [0]
    real = checkpoint_module._fsync_file

    def disk_fills(path):
        calls[0] += 1
        if calls[0] > 5:  # the first checkpoint (4 files + manifest) fits, the next does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(checkpoint_module, "_fsync_file", disk_fills)
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "checkpoint.every=12")
    line = _one_line_error(err)
    assert code == 1 and "could not write checkpoint" in line and "No space left on device" in line
    folder = tmp_path / "run"
    assert not (folder / "results.json").exists() and (folder / "error.json").exists()
    # The crash in the middle of the second write left the first checkpoint whole and loadable.
    left = [p.name for p in (folder / "checkpoints").iterdir()]
    assert left == ["000000012-0-train"]
    assert checkpoint_module.read_checkpoint(folder / "checkpoints" / left[0]).step == 12
    monkeypatch.setattr(checkpoint_module, "_fsync_file", real)
    code, err = cli(monkeypatch, capsys, folder, "checkpoint.every=12")
    assert code == 0 and json.loads((folder / "results.json").read_text())["resumed_from"] == "000000012-0-train"


def test_finished_folder_with_another_config(monkeypatch, capsys, tmp_path):
    assert cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0")[0] == 0
    before = (tmp_path / "run" / "results.json").read_text()
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0", "seed=1")
    assert (
        code == 2
        and "holds a finished run that was made with a different config (seed: 1337 -> 1)" in _one_line_error(err)
    )
    assert (tmp_path / "run" / "results.json").read_text() == before and not (tmp_path / "run" / "error.json").exists()
    # The same command again is answered from the finished run, without training.
    code, err = cli(monkeypatch, capsys, tmp_path / "run", "schedule.finetune_steps=0")
    assert code == 0 and (tmp_path / "run" / "results.json").read_text() == before


def test_resume_from_a_folder_without_checkpoints(monkeypatch, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = cli(monkeypatch, capsys, tmp_path / "run", f"resume={tmp_path / 'empty'}", "output_dir=null")
    assert code == 2 and "holds no checkpoint" in _one_line_error(err)


class ExplodingLogger(Logger):
    """A logging backend that fails the way W&B does when the network goes (or never starts)."""

    def __init__(self, config=None, out_dir=None, fail_at_start=False):
        if fail_at_start:
            raise ConnectionError("wandb.init timed out")

    def log(self, metrics, step):
        if step >= 15:
            raise ConnectionError("network is unreachable")


@pytest.mark.parametrize("fail_at_start", [False, True])
def test_logger_failure_never_stops_training(monkeypatch, capsys, tmp_path, fail_at_start):
    code, err = cli(
        monkeypatch,
        capsys,
        tmp_path / "run",
        f"+logger.fail_at_start={fail_at_start}",
        f"logger._target_={__name__}.ExplodingLogger",
    )
    assert code == 0 and "warning: logger" in err
    assert ("could not start" in err) if fail_at_start else ("failed in log()" in err)
    steps = [json.loads(ln).get("step") for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 39 in steps and (tmp_path / "run" / "results.json").exists()


def test_sigterm_through_the_entrypoint_exits_143_and_the_rerun_resumes(monkeypatch, capsys, tmp_path):
    import os
    import signal

    from swp.tasks.char_lm import CharLMTask

    original, calls = CharLMTask.train_batch, [0]

    def preempted(self, *args):
        calls[0] += 1
        if calls[0] == 12:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args)

    monkeypatch.setattr(CharLMTask, "train_batch", preempted)
    folder = tmp_path / "run"
    code, err = cli(monkeypatch, capsys, folder)
    assert code == 128 + signal.SIGTERM
    assert (
        f"stopped: interrupted by SIGTERM at train step 12; checkpoint {folder / 'checkpoints' / '000000012-0-train'}"
        in err
    )
    assert json.loads((folder / "error.json").read_text())["type"] == "RunInterrupted"
    assert not (folder / "results.json").exists()
    monkeypatch.setattr(CharLMTask, "train_batch", original)
    code, err = cli(monkeypatch, capsys, folder)
    assert code == 0 and not (folder / "error.json").exists()
    assert json.loads((folder / "results.json").read_text())["resumed_from"] == "000000012-0-train"
    assert not (folder / "checkpoints").exists()  # removed after success (checkpoint.keep_after_success=false)


# ---------------------------------------------------------------------------------------------
# Run folders that cannot be confused


def test_a_second_run_on_a_folder_in_use_stops_at_once(monkeypatch, capsys, tmp_path):
    import os
    import subprocess

    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom swp.infra.run_folder import lock\n"
            f"with lock({str(folder)!r}):\n    print('held', flush=True)\n    time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(CONF.parent / "src")},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = cli(monkeypatch, capsys, folder)
        line = _one_line_error(err)
        assert code == 2 and f"output folder {folder} is in use by another run (pid {holder.pid})" in line
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # nothing written, not even error.json
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its process: the same command now runs.
    code, err = cli(monkeypatch, capsys, folder, "schedule.finetune_steps=0")
    assert code == 0 and (folder / "results.json").exists()


@pytest.fixture
def finished(monkeypatch, capsys, tmp_path):
    folder = tmp_path / "run"
    assert cli(monkeypatch, capsys, folder, "schedule.finetune_steps=0")[0] == 0
    return folder


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no config.yaml", "holds results.json but no config.yaml, so it cannot say which config it finished"),
        ("config.yaml", "has a damaged config.yaml"),
        ("config.yaml code", "has a damaged config.yaml"),
        ("config.yaml list", "has a damaged config.yaml (not a mapping of settings)"),
        ("results.json", "has a damaged results.json"),
    ],
)
def test_finished_folder_that_cannot_say_what_it_finished(monkeypatch, capsys, finished, tmp_path, damage, message):
    planted = tmp_path / "planted"
    if damage == "no config.yaml":
        (finished / "config.yaml").unlink()
    elif damage == "config.yaml":
        (finished / "config.yaml").write_text("seed: [1337\n")
    elif damage == "config.yaml code":  # yaml.safe_load refuses python tags: reading never runs code
        (finished / "config.yaml").write_text(f"seed: !!python/object/apply:os.system ['touch {planted}']\n")
    elif damage == "config.yaml list":
        (finished / "config.yaml").write_text("- 1\n- 2\n")
    else:
        (finished / "results.json").write_text('{"val_loss": 1.')

    def files():
        return {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file() and p.name != ".lock"}

    before = files()
    # Any config, the original included, gets the same one-line answer: never "already finished".
    for extra in ([], ["seed=7"]):
        code, err = cli(monkeypatch, capsys, finished, "schedule.finetune_steps=0", *extra)
        assert code == 2 and message in _one_line_error(err) and "already finished" not in err
    assert files() == before
    assert not planted.exists()


# ---------------------------------------------------------------------------------------------
# A real full disk (a small tmpfs; needs root to mount one)


@pytest.fixture
def small_disk(tmp_path):
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk, leave: int):
    """Fills the filesystem until only `leave` bytes are free; returns the filler file."""
    import os

    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(0, free - leave))
    return filler


def _assert_full_disk_left_it_clean(folder, err, what):
    import os

    line = _one_line_error(err)
    assert what in line
    assert ": No space left on device; free disk space, then re-run the same command to resume" in line
    assert "Traceback" not in err
    assert not (folder / "results.json").exists()
    record = json.loads((folder / "error.json").read_text())  # whole, not empty
    assert record["type"] == "RunError" and "No space left on device" in record["error"]
    leftovers = [p for p in folder.rglob("*") if ".tmp" in p.name]
    assert leftovers == [], leftovers
    assert not (folder / "error.json.tmp").exists() and os.path.exists(folder / "config.yaml")


@pytest.mark.parametrize("fails_in", ["safetensors", "torch.save"])
def test_real_full_disk_while_checkpointing(monkeypatch, capsys, tmp_path, small_disk, fails_in):
    from swp.infra.checkpoint import CheckpointStore

    folder, real_save, filler = small_disk / "run", CheckpointStore.save, []

    def save_then_fill(self, model, state, global_step, extra_files=None):
        path = real_save(self, model, state, global_step, extra_files)
        if not filler:  # the first checkpoint fits; then the disk is (nearly) full
            weights = (path / "model.safetensors").stat().st_size
            leave = 48 * 1024 if fails_in == "safetensors" else weights + 64 * 1024
            filler.append(_fill(small_disk, leave))
        return path

    monkeypatch.setattr(CheckpointStore, "save", save_then_fill)
    code, err = cli(monkeypatch, capsys, folder, "checkpoint.every=12", hydra_dir=tmp_path / "hydra")
    assert code == 1
    failed = folder / "checkpoints" / "000000024-0-train"
    _assert_full_disk_left_it_clean(folder, err, f"could not write checkpoint {failed}")
    left = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert left == ["000000012-0-train"]  # the last good one, whole and loadable
    assert checkpoint_module.read_checkpoint(folder / "checkpoints" / left[0]).step == 12
    # Following the advice: free space, same command, it resumes and finishes.
    filler[0].unlink()
    monkeypatch.setattr(CheckpointStore, "save", real_save)
    code, err = cli(monkeypatch, capsys, folder, "checkpoint.every=12", hydra_dir=tmp_path / "hydra")
    assert code == 0 and json.loads((folder / "results.json").read_text())["resumed_from"] == "000000012-0-train"
    assert not (folder / "error.json").exists()


def test_real_full_disk_while_writing_the_final_artifacts(monkeypatch, capsys, tmp_path, small_disk):
    from swp.run import Run

    folder, real, filler = small_disk / "run", Run.write_outputs, []

    def fill_then_write(self, out_dir, results, **kw):
        filler.append(_fill(small_disk, 48 * 1024))
        return real(self, out_dir, results, **kw)

    monkeypatch.setattr(Run, "write_outputs", fill_then_write)
    code, err = cli(monkeypatch, capsys, folder, hydra_dir=tmp_path / "hydra")
    assert code == 1
    _assert_full_disk_left_it_clean(folder, err, f"could not write {folder / 'model.safetensors'}")
    assert not (folder / "model.safetensors").exists()
    newest = sorted((folder / "checkpoints").iterdir())[-1]
    assert checkpoint_module.read_checkpoint(newest).stage == "finetuned"  # the last good checkpoint is intact
    filler[0].unlink()
    monkeypatch.setattr(Run, "write_outputs", real)
    code, err = cli(monkeypatch, capsys, folder, hydra_dir=tmp_path / "hydra")
    assert code == 0 and (folder / "results.json").exists() and not (folder / "error.json").exists()


# ---------------------------------------------------------------------------------------------
# Over-pruning warns


# ---------------------------------------------------------------------------------------------
# Export trusts nothing in the run folder


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    """A finished, pruned tiny run (trained once for every export test; each gets a copy)."""
    from swp.testing.tiny import compose_cfg

    folder = tmp_path_factory.mktemp("export") / "run"
    swp_cli.run(compose_cfg([*TINY, *SHORT, "energy=none", "target_sparsity=0.5"], folder))
    return folder


@pytest.fixture
def run_copy(exported_run, tmp_path):
    import shutil

    return Path(shutil.copytree(exported_run, tmp_path / "run"))


def _export(capsys, *argv):
    from scripts import export as export_script

    with pytest.raises(SystemExit) as info:
        export_script.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return info.value.code, err


def test_export_of_a_finished_run_checks_the_masks(run_copy):
    from scripts import export as export_script

    report = export_script.main([str(run_copy)])
    assert report["bit_identical"] and (run_copy / "export" / "export.json").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("unfinished", "holds no finished run (no results.json)"),
        ("results.json", "results.json is damaged"),
        ("model.safetensors", "model.safetensors is damaged"),
        ("masks.safetensors", "masks.safetensors is damaged"),
        ("weights not zero", "are not zero where its mask prunes them"),
    ],
)
def test_export_refuses_an_unfinished_or_damaged_run(capsys, run_copy, damage, message):
    from safetensors.torch import load_file, save_file

    if damage == "unfinished":
        (run_copy / "results.json").unlink()
    elif damage == "results.json":
        (run_copy / "results.json").write_text("{")
    elif damage in ("model.safetensors", "masks.safetensors"):
        with open(run_copy / damage, "r+b") as f:
            f.truncate(200)
    else:
        weights = load_file(str(run_copy / "model.safetensors"))
        masks = load_file(str(run_copy / "masks.safetensors"))
        name = next(iter(masks))
        w = weights[name].clone()
        w[~masks[name]] = 0.5  # someone edited the pruned weights back in
        weights[name] = w
        save_file(weights, str(run_copy / "model.safetensors"))
    code, err = _export(capsys, run_copy)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (run_copy / "export").exists()  # no empty export/ left behind


def test_export_never_runs_code_from_the_run_folder(capsys, run_copy, tmp_path):
    """A `_target_` planted in config.yaml is never imported or called, whatever the options."""
    victim, copied = tmp_path / "victim.txt", tmp_path / "copied.txt"
    victim.write_text("x")
    planted = (
        f"model:\n  _target_: shutil.copyfile\n  src: {victim}\n  dst: {copied}\n"
        f"dataset:\n  _target_: shutil.copyfile\n  src: {victim}\n  dst: {copied}\n"
    )
    (run_copy / "config.yaml").write_text(planted)
    from scripts import export as export_script

    export_script.main([str(run_copy)])
    export_script.main([str(run_copy), "--out", str(tmp_path / "e2"), "--pretrained", "auto"])
    code, err = _export(capsys, run_copy, "--out", tmp_path / "e3", "--pretrained", "always")
    assert code == 2 and "--pretrained always needs --hf-config" in err
    assert not copied.exists()


