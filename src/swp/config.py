"""The config a `python train.py <overrides>` run would get, composed in-process.

Tests, benchmarks and notebooks call `run(cfg)` with it: same files, same defaults, and the
Hydra runtime registered (so results name the chosen options), without starting Hydra's CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import swp.resolvers  # noqa: F401  (the config files' ${swp.*} arithmetic)
from swp.errors import ConfigError, one_line

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_run_config(overrides: Sequence[str], output_dir: str | Path, conf_dir: Path = CONF_DIR) -> DictConfig:
    """conf/train.yaml with the overrides, writing into `output_dir` (no Hydra run folder).

    Raises:
        ConfigError: an override Hydra cannot apply (an unknown option such as ``pruner=nosuch``,
            an unknown key, bad syntax), in one line that names the valid options where Hydra
            knows them: the same error type a bad value gets.
    """
    from hydra.errors import HydraException, MissingConfigException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    except MissingConfigException as exc:
        raise ConfigError(_missing_option(exc)) from None
    except HydraException as exc:
        raise ConfigError(one_line(exc)) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


def _missing_option(exc) -> str:
    """``pruner=nosuch is not an option of pruner (its options: gmp, ...)`` from Hydra's error."""
    missing, options = getattr(exc, "missing_cfg_file", None), getattr(exc, "options", None)
    if not missing or "/" not in missing or not options:
        return one_line(exc).split(" Config search path:")[0]
    group, name = missing.rsplit("/", 1)
    return f"{group}={name} is not an option of {group} (its options: {', '.join(options)})"
