"""Values that are valid but unbounded: every size-like (integer) key of the config, walked from
the composed config of every pruner option, set to a huge value, either stops before anything is
trained or written (one line), or is capped with a `note:` naming it, or is declared a key whose
size costs only time (`swp.preflight.UNCHECKED`, each with its reason). Nothing in between: no traceback, no
allocation that takes the machine down."""

from __future__ import annotations

import resource

import pytest
from omegaconf import OmegaConf

from swp import launch
from swp.preflight import UNCHECKED
from swp.testing.tiny import MICRO, compose_cfg, error_line, options, run_cli

HUGE = 2**40
BASE = MICRO + ["target_sparsity=0.5"]  # GMP needs a final sparsity


def _int_keys(cfg) -> list[str]:
    flat = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, int) and not isinstance(v, bool):
                flat[f"{prefix}{k}"] = v

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return sorted(flat)


def _cases() -> list[tuple[str, str]]:
    """(pruner option, key): every integer key of the default config once, and every integer
    key of each pruner option's own settings."""
    cases = [("swp", k) for k in _int_keys(compose_cfg(BASE, "/tmp/unused"))]
    for pruner in options("pruner"):
        keys = _int_keys(compose_cfg(BASE + [f"pruner={pruner}"], "/tmp/unused"))
        cases += [(pruner, k) for k in keys if k.startswith("pruner.") and (pruner, k) not in cases]
    return cases


def _switches(pruner: str, key: str) -> list[str]:
    """SWP calibrates (and uses calibration_batches) only when activation-aware, magnitude only
    under allocation=owl."""
    if key.startswith("pruner.calibration") and pruner.startswith("swp"):
        return ["pruner.activation_aware=true"]
    if key.startswith("pruner.calibration") and pruner == "magnitude":
        return ["pruner.allocation=owl"]
    return []


CASES = _cases()


class Reached(Exception):
    """The run got past every check to its first stage."""


@pytest.fixture
def bounded_memory():
    """An address-space limit a few GiB above this process's own: an allocation the checks
    missed fails at once instead of taking the machine down."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (6 << 30), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("pruner, key", CASES, ids=[f"{p}:{k}" for p, k in CASES])
def test_a_huge_size_is_refused_capped_or_only_costs_time(monkeypatch, capsys, tmp_path, bounded_memory, pruner, key):
    trained = []

    def reached(*args, **kwargs):
        trained.append(True)
        raise Reached

    monkeypatch.setattr(launch.Job, "_execute", reached)
    folder = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, folder, f"pruner={pruner}", *_switches(pruner, key), f"{key}={HUGE}",
                        base=BASE)
    if trained:
        notes = [ln for ln in err.replace("Reached", "").splitlines() if ln.startswith("note: ")]
        assert any(key in n for n in notes) or key in UNCHECKED, f"{key}={HUGE} was accepted without a check"
        return
    line = error_line(err)
    assert code in (1, 2), err
    assert not (folder / "config.yaml").exists()  # refused before anything of the run was written
    assert key.split(".")[-1] in line or "memory" in line, line


# ---------------------------------------------------------------------------------------------
# The examples, by name


def test_a_window_wider_than_the_run_is_capped_with_the_same_results(capsys, tmp_path):
    """pruner.window=1000000 on a run with 3 tracking points asked for a million-slot ring per
    weight (the kernel killed the process); it now holds the 3 points, and scores as window=2."""
    from swp.cli import run
    from swp.testing.outcome import results_outcome

    run(compose_cfg(BASE + ["pruner.window=1000000"], tmp_path / "huge"))
    assert "note: pruner.window=1000000 is wider than the run's 3 tracking points" in capsys.readouterr().err
    run(compose_cfg(BASE + ["pruner.window=2"], tmp_path / "fits"))
    assert results_outcome(tmp_path / "huge") == results_outcome(tmp_path / "fits")


@pytest.mark.parametrize("overrides, message", [
    (["pruner=sparsegpt", "pruner.calibration_batches=100000"],
     "pruner.calibration_batches=100000 is more than the training split holds (281 batches of 64 tokens)"),
    (["pruner.state_device=cuda"], "pruner.state_device=cuda was asked for but CUDA is not available"),
    (["schedule.train_steps=0"], "this run has no tracking point (schedule.train_steps=0)"),
])
def test_values_the_run_cannot_honour_are_refused_before_training(monkeypatch, capsys, tmp_path, overrides, message):
    if "cuda" in message:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, err = run_cli(monkeypatch, capsys, tmp_path / "run", *overrides, base=BASE)
    assert code == 2 and message in error_line(err)
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize("window, key", [(None, "pruner.state_device"), (2, "pruner.window")])
def test_tracked_state_larger_than_the_machine_is_refused(monkeypatch, capsys, tmp_path, window, key):
    """The memory the tracked state implies, against this machine's (made small here)."""
    from swp import preflight

    real = preflight.check_memory

    def machine_without_room_for_the_state(needs, memory, device):
        room = sum(d.bytes for d in needs if not d.key.startswith("pruner.")) + 1  # everything but the state
        return real(needs, lambda kind: room, device)

    monkeypatch.setattr(preflight, "check_memory", machine_without_room_for_the_state)
    code, err = run_cli(monkeypatch, capsys, tmp_path / "run", f"pruner.window={window or 'null'}", base=BASE)
    line = error_line(err)
    assert code == 2 and line.startswith(f"error: {key}: the pruner's tracked state over 3 tracking points would take")
    assert "more than this machine's" in line and not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.slow
def test_fsdp_in_one_process_is_refused_in_one_line(tmp_path):
    """torchrun --nproc_per_node=1 with distributed=fsdp died at its first checkpoint (safetensors:
    invalid python storage); it is refused before training. torchrun then prints its own
    ChildFailedError report and exits 1 (docs/distributed.md)."""
    import os
    import subprocess
    import sys

    from swp.distributed.launch import free_port
    from swp.testing.tiny import ROOT

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
                        f"--master_port={free_port()}", str(ROOT / "train.py"), *BASE, "distributed=fsdp",
                        f"output_dir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    ours = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert p.returncode == 1 and len(ours) == 1 and "distributed=fsdp needs at least 2 processes" in ours[0]
    assert "exitcode  : 2" in p.stderr  # torchrun's report names the rank's own exit status
    assert sorted(x.name for x in (tmp_path / "run").iterdir()) == [".lock", "error.json"]
