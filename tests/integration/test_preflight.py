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
    """SWP calibrates (and uses calibration_batches) only when activation-aware."""
    if key.startswith("pruner.calibration") and pruner.startswith("swp"):
        return ["pruner.activation_aware=true"]
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

    monkeypatch.setattr(launch, "_execute", reached)
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
