"""The tiny but real configuration the tests and benchmarks share.

Tiny means the Shakespeare data, the GPT class and every stage, in a few seconds on one core.
"""

from __future__ import annotations

from pathlib import Path

from swp.config import CONF_DIR, compose_run_config

ROOT = CONF_DIR.parent
CONF = CONF_DIR

TINY = [
    "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=32",
    "dataset.text.max_chars=200000", "dataset.batch_size=8", "dataset.eval_batches=4",
    "schedule.train_steps=60", "schedule.track_every=5", "schedule.finetune_steps=20",
    "schedule.warmup_steps=5", "schedule.finetune_warmup_steps=2", "schedule.eval_every=0",
    "threads=1", "progress=false", "dense_cache.enabled=false",
]


def compose_cfg(overrides: list[str], out_dir: Path):
    """The real conf/train.yaml with overrides, as Hydra composes it for `python train.py`."""
    return compose_run_config(overrides, out_dir, CONF)


def load_script(name: str):
    """Imports `scripts/<name>.py` as a module (tests call its functions), without sys.path edits."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"swp_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

# Smaller still: every stage and a checkpoint inside each phase (every 3 steps) in under a second,
# for tests that run every pruner many times (resume at every stage boundary).
MICRO = [
    "model.n_layer=2", "model.n_head=2", "model.n_embd=16", "model.block_size=16",
    "dataset.text.max_chars=20000", "dataset.batch_size=4", "dataset.eval_batches=1",
    "schedule.train_steps=6", "schedule.track_every=2", "schedule.finetune_steps=4",
    "schedule.warmup_steps=1", "schedule.finetune_warmup_steps=1", "schedule.eval_every=0",
    "threads=1", "progress=false", "dense_cache.enabled=false", "energy=none", "trajectories.per_tensor=0",
    "checkpoint.every=3", "checkpoint.keep_after_success=true",
]


def options(group: str) -> list[str]:
    """Every option of a config group (its conf/<group>/*.yaml), sorted."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_cli(monkeypatch, capsys, out: Path, *overrides: str, base=MICRO) -> tuple[int, str]:
    """`python train.py <base> output_dir=<out> <overrides>` in this process (Hydra's real
    entrypoint, `swp.cli.hydra_app`); returns (exit status, stderr)."""
    import sys

    from swp.cli import hydra_app

    argv = ["train.py", f"--config-path={CONF}", *base, f"output_dir={out}", f"hydra.run.dir={out.parent / 'hydra'}",
            *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        hydra_app()()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def error_line(err: str, prefix: str = "error: ") -> str:
    """The one line of stderr that starts with `prefix`; fails unless there is exactly one and
    no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
