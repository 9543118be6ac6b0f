"""The run object's typed state: stages in order, progress that round-trips through checkpoints."""

from __future__ import annotations

from swp.cli import run
from swp.run import Progress


def test_checkpoints_carry_the_progress_of_the_run(tiny_cfg, tmp_path):
    from swp.infra.checkpoint import read_checkpoint

    run(tiny_cfg("schedule.train_steps=20", "schedule.finetune_steps=6", "checkpoint.keep=9",
                 "checkpoint.keep_after_success=true", "checkpoint.every=4"))
    folders = sorted((tmp_path / "run" / "checkpoints").iterdir())
    stages = [read_checkpoint(f).stage for f in folders]
    assert stages == ["train"] * 4 + ["dense", "pruned", "finetune", "finetuned"]
    last = read_checkpoint(folders[-1]).state["record"]
    assert set(last) == set(Progress(rate=0).state_dict())
    assert last["dense"] is not None and last["pruned"] is not None and 0 < last["mask_sparsity"] < 1
