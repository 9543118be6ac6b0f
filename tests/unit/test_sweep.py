"""Sweeps as config: the paper's grid, a job failure that spares the others, launcher configs."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from swp.testing.tiny import CONF


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_paper_lm_sweep_is_the_paper_grid_two_jobs_one_thread_each():
    cfg = _compose("experiment=paper_lm_sweep")
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert params.pruner == "swp,magnitude,random" and params.seed == "1,2,3"
    assert params.target_sparsity == "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    assert cfg.hydra.sweeper._target_.endswith("ControlSweeper") and cfg.hydra.sweeper.control is True
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.threads == 1 and cfg.dense_cache.enabled


@pytest.mark.skipif(not (CONF / "experiment" / "price.yaml").exists(), reason="the price task is not on this branch")
def test_price_sweep_composes():
    cfg = _compose("experiment=price_sweep")
    assert cfg.hydra.sweeper.params.pruner == "swp,magnitude" and cfg.hydra.sweeper.params.seed == "1,2,3"
    assert cfg.hydra.sweeper.params.target_sparsity == "0.1,0.3,0.5,0.7,0.9"
    assert (cfg.schedule.train_steps, cfg.schedule.track_every, cfg.schedule.finetune_steps) == (1000, 10, 200)
    assert cfg.hydra.launcher._target_.endswith("BasicLauncher")  # one job at a time
    # A sweep experiment sets no launcher keys, so any launcher can replace its own.
    for launcher, target in (("slurm", "SlurmLauncher"), ("local_parallel", "JoblibLauncher")):
        assert _compose("experiment=price_sweep", f"hydra/launcher={launcher}").hydra.launcher._target_.endswith(target)


def test_swp_variants_sweep_changes_one_choice_at_a_time():
    cfg = _compose("experiment=swp_variants_sweep")
    params = cfg.hydra.sweeper.params
    assert params.target_sparsity == "0.3,0.5,0.7,0.9" and params.seed == "1,2,3"
    default = {"average_of": "magnitude", "compare": "importance", "window": None, "scope": "layer"}
    changed = {"swp": {}, "swp_signed": {"average_of": "signed"}, "swp_current": {"compare": "current"},
               "swp_window": {"window": 9}, "swp_global": {"scope": "global"}}
    assert params.pruner.split(",") == list(changed)
    for name, change in changed.items():
        pruner = _compose(f"pruner={name}").pruner
        assert pruner._target_ == "swp.pruners.swp.SWPPruner"
        assert {k: pruner[k] for k in default} == default | change


def _jobs(*overrides):
    """The jobs the sweeper (hydra/sweeper=swp) launches for `python train.py -m ...overrides`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import instantiate

    cfg = _compose(*[o for o in overrides if "," not in o])  # as Hydra: the sweep's values come later
    sweeper = instantiate(cfg.hydra.sweeper)

    class Loader:  # what the sweeper asks of Hydra's config loader: a job's composed config
        def load_sweep_config(self, master, job):
            return _compose(*job)

    sweeper.hydra_context, sweeper.config = type("Ctx", (), {"config_loader": Loader()})(), cfg
    job_overrides = [o for o in overrides if not o.startswith("hydra")]
    parsed = OverridesParser.create().parse_overrides(sweeper._parse_config() + job_overrides)
    (batch,) = sweeper.split_arguments(parsed, None)
    return batch


def test_the_sweeper_adds_the_control_once_per_seed():
    jobs = _jobs("pruner=swp,magnitude", "target_sparsity=0.3,0.5,0.7", "seed=1,2,3")
    controls = [(i, sorted(j)) for i, j in enumerate(jobs) if "pruner=none" in j]
    assert len(jobs) == 18 + 3 and sorted(c for _, c in controls) == [["pruner=none", f"seed={s}"] for s in (1, 2, 3)]
    for i, control in controls:  # after the job that trains its seed's dense phase
        assert i > min(k for k, j in enumerate(jobs) if control[1] in j and "pruner=none" not in j)


def test_the_sweeper_deduplicates_listed_controls_and_drops_pruner_options():
    jobs = _jobs("pruner=swp,none", "target_sparsity=0.3,0.5", "pruner.window=null")
    assert sum("pruner=none" in j for j in jobs) == 1 and len(jobs) == 3
    (control,) = [j for j in jobs if "pruner=none" in j]
    assert not any(o.startswith(("pruner.", "target_sparsity")) for o in control)


def test_the_control_can_be_turned_off_and_is_not_added_without_fine_tune():
    assert len(_jobs("pruner=swp,magnitude", "target_sparsity=0.3,0.5", "hydra.sweeper.control=false")) == 4
    assert len(_jobs("pruner=swp,magnitude", "target_sparsity=0.3,0.5", "schedule=one_shot")) == 4
    assert len(_jobs("pruner=swp,magnitude", "target_sparsity=0.3,0.5", "schedule.finetune_steps=0")) == 4
    assert len(_jobs("pruner=swp,magnitude", "target_sparsity=0.3,0.5")) == 5


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
@pytest.mark.parametrize("launcher", ["basic", "local_parallel", "slurm"])
def test_every_experiment_composes_with_every_launcher(experiment, launcher):
    """An experiment may choose a launcher, never set its keys: `hydra/launcher=slurm` (or any
    other) must replace it without a ConfigKeyError."""
    cfg = _compose(f"experiment={experiment}", f"hydra/launcher={launcher}")
    expected = {"basic": "BasicLauncher", "local_parallel": "JoblibLauncher", "slurm": "SlurmLauncher"}[launcher]
    assert cfg.hydra.launcher._target_.endswith(expected)
