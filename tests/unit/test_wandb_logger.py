"""W&B: what an offline run wrote is read back from its .wandb file and table JSON."""


import pytest

from swp.errors import ConfigError
from swp.logging.wandb_logger import WandbLogger, resolve_mode, sweep_group


def test_mode_is_offline_unless_the_user_asks(tmp_path):
    settings = tmp_path / "settings"
    assert resolve_mode(None, environ={}, settings_files=[settings]) == "offline"  # file absent
    settings.write_text("[default]\nmode = online\n")
    assert resolve_mode(None, environ={}, settings_files=[settings]) == "online"
    assert resolve_mode(None, environ={"WANDB_MODE": "disabled"}, settings_files=[settings]) == "disabled"
    assert resolve_mode("offline", environ={"WANDB_MODE": "online"}) == "offline"  # config wins
    assert resolve_mode(None, environ={"WANDB_MODE": "dryrun"}) == "offline"
    with pytest.raises(ConfigError, match="logger.mode"):
        resolve_mode("onlien", environ={})


def test_sweep_jobs_share_the_sweep_folder_as_group(tmp_path):
    sweep = tmp_path / "multirun" / "sweep7"
    (sweep / "3").mkdir(parents=True)
    assert sweep_group(sweep / "3") is None  # not a Hydra sweep folder yet
    (sweep / "multirun.yaml").write_text("{}")
    assert sweep_group(sweep / "3") == sweep_group(sweep) == "multirun/sweep7"


def test_logger_passes_timeout_and_offline_mode(tmp_path, monkeypatch):
    import wandb

    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("WANDB_RUN_GROUP", "from-env")
    monkeypatch.setattr(wandb, "init", fake_init)
    logger = WandbLogger(config={"a": 1}, out_dir=str(tmp_path / "run"), init_timeout=7)
    assert not logger.active
    assert seen["mode"] == "offline" and seen["settings"].init_timeout == 7.0 and seen["dir"] == str(tmp_path / "run")
    assert seen["group"] == "from-env" and seen["tags"] is None  # unset keys defer to W&B's variables
    logger.log({"x": 1.0}, step=0)  # no-ops once W&B is off
    logger.finish(True)
