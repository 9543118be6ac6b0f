"""The sparsity guard: pruned weights are exactly zero and the masks prune what was recorded.

Checked after every phase and whenever masks are loaded, so sparsity lost in fine-tuning, a
reload or a stale checkpoint fails loudly instead of being reported as a result.
"""

from __future__ import annotations

from swp.pruning.masks import MaskDriftError, MaskSet


def check_sparsity(masks: MaskSet | None, where: str, recorded: float | None = None) -> None:
    """Raises MaskDriftError when a masked weight is non-zero or the masks' pruned fraction
    differs from `recorded` (the fraction written when the masks were made)."""
    if masks is None:
        return
    masks.check(where)
    measured = masks.sparsity()
    if recorded is not None and measured != recorded:
        raise MaskDriftError(f"{where}: the masks prune {measured:.6%} of the weights but {recorded:.6%} was recorded")
