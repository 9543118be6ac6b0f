"""The calibrating pruners under DDP (gloo, 2 processes): each rank calibrates on its slice of the
calibration batches, the statistics are summed over the ranks, and every rank prunes exactly as
one process that saw all the batches.

The one-process reference is computed inside each rank on a copy of the model with the whole
batches, so nothing is written and the comparison needs no second launch.
"""

from __future__ import annotations

import pytest

WORLD = 2


def test_calibration_under_fsdp_is_refused_in_one_line_and_allowed_under_ddp():
    from swp.distributed.strategy import DDP, FSDP
    from swp.errors import ConfigError
    from swp.pruners.wanda import WandaPruner
    from swp.testing.blocks import TwoBlocks

    pruner = WandaPruner(TwoBlocks())
    DDP().check_pruner("WandaPruner", pruner.capabilities)  # no error: DDP reduces the statistics
    refused = r"^pruner WandaPruner \(calibration\) is not supported under distributed=fsdp"
    with pytest.raises(ConfigError, match=refused):
        FSDP().check_pruner("WandaPruner", pruner.capabilities)
