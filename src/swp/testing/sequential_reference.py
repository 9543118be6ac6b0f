"""The sequential pass of Wanda and SparseGPT as it was before `block_by_block`: for each block
the model runs from the embedding up to that block (n(n+1)/2 block forwards for n blocks).

Kept only as the reference the tests and `scripts/bench_smollm2.py --sequential` compare the
block-by-block pass with (same masks, same weights); no run uses it.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Iterator
from unittest import mock

from swp.pruners.calibration import run_batches, sequential_blocks


def from_the_embedding(model, names, batches: list, forward, recorded=None) -> Iterator:
    """`swp.pruners.calibration.block_by_block`'s contract, the old way: each block's layers are
    measured by forwards of the whole model that end after the block."""
    for block, members in sequential_blocks(model, names):
        yield members, partial(run_batches, model, batches, forward, block)


@contextlib.contextmanager
def old_sequential_pass() -> Iterator[None]:
    """Within this context WandaPruner and SparseGPTPruner prune with `from_the_embedding`."""
    with mock.patch("swp.pruners.wanda.block_by_block", from_the_embedding), \
            mock.patch("swp.pruners.sparsegpt.block_by_block", from_the_embedding), \
            mock.patch("swp.pruners.wanda.first_stack_recording", lambda *_: contextlib.nullcontext()):
        yield
