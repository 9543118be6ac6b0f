"""The run object's typed state: stages in order, progress that round-trips through checkpoints."""

from __future__ import annotations

import pytest
import torch

from swp.infra.checkpoint import STAGES
from swp.run import Progress
from swp.stages import Stage


def test_stages_are_ordered_and_named_as_checkpoints_name_them():
    assert list(Stage) == sorted(Stage)
    assert STAGES == ("train", "dense", "pruned", "finetune", "finetuned")
    assert all(Stage.from_label(s.label) is s for s in Stage)
    assert Stage.TRAIN < Stage.DENSE < Stage.PRUNED < Stage.FINETUNE < Stage.FINETUNED
    with pytest.raises(KeyError):
        Stage.from_label("warmup")


def test_progress_round_trips_through_a_torch_save(tmp_path):
    p = Progress(rate=0.7, thresholds={"a.weight": 0.01}, mask_sparsity=0.25, dense_cache="miss",
                 dense={"loss": 2.0}, pruned={"loss": 2.5}, dense_stats={"tokens_per_s": 10.0})
    torch.save(p.state_dict(), tmp_path / "p.pt")
    q = Progress(rate=0.0)
    q.load_state_dict(torch.load(tmp_path / "p.pt", weights_only=True))
    assert q == p and q.initial is None and q.ft_stats == {"tokens_per_s": 0.0}


