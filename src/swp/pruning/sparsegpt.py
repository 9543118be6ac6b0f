"""SparseGPT (Frantar & Alistarh 2023, IST-DASLab/sparsegpt `sparsegpt.py`): prune one layer and
reconstruct its kept weights so the layer's output on calibration inputs changes least.

For a layer y = W x with inputs X (in_features x tokens) the loss of a pruned W' is
||W X - W' X||^2 = tr((W - W') H (W - W')^T) / 2 with H = 2 X X^T / n. Optimal Brain Surgeon
removes a weight w_q and moves the others by -w_q / [H^-1]_qq * H^-1[q, :]; SparseGPT does
this column by column from left to right with the upper Cholesky factor of H^-1, which holds
every needed row of the successive inverse Hessians, so each column costs one outer product.
Columns are processed in blocks of 128: within a block the updates are applied eagerly, to the
columns right of the block lazily in one matrix product (the reference's speed-up). The mask
of a block is chosen when the block starts, by w^2 / [H^-1]_qq^2 (the OBS saliency) over the
block's rows and columns; with N:M it is chosen per group of M columns as each group starts.
"""

from __future__ import annotations

import math

import torch

from swp.pruning.nm import nm_keep_mask


def add_hessian_batch_(hessian: torch.Tensor, samples: int, inputs: torch.Tensor) -> int:
    """Folds one batch of layer inputs (batch, ..., in_features) into H = 2/n sum x x^T in place.

    n counts samples (the batch's first dim; a 2-D input is one sample), as the reference does.
    Returns the new sample count.
    """
    x = inputs.detach()
    batch = x.shape[0] if x.dim() > 2 else 1
    x = x.reshape(-1, x.shape[-1]).float()
    total = samples + batch
    hessian.mul_(samples / total)
    x = x * math.sqrt(2.0 / total)
    hessian.add_(x.t() @ x)
    return total


def merge_hessians_(hessian: torch.Tensor, samples: int, reduce) -> int:
    """The H of all ranks' samples, in place, from this rank's H over its `samples`.

    H = 2/n sum x x^T is a mean, so the ranks' Hessians combine weighted by their sample
    counts: H = sum_r n_r H_r / sum_r n_r. `reduce` sums a tensor over the ranks in place (the
    identity in one process, where this changes nothing). Returns the total sample count.
    """
    counts = reduce(torch.tensor([float(samples)], dtype=torch.float64, device=hessian.device))
    total = float(counts.item())
    if total == samples:  # one process (or ranks that saw nothing else): H is already the mean
        return samples
    hessian.mul_(samples)
    reduce(hessian)
    hessian.div_(total)
    return int(total)


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float = 0.0,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
    mask: torch.Tensor | None = None,
    overwrite_hessian: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Prunes `weight` (out_features x in_features) by SparseGPT with the inputs' Hessian.

    Args:
        weight: the layer's weight as (out, in) (transpose a Conv1D weight first); not modified.
        hessian: 2/n X X^T over the calibration inputs, (in, in).
        sparsity: fraction pruned: exactly round(sparsity * weight.numel()) weights in all, each
            block taking its share by rank (the reference prunes int(count * sparsity) + 1 per
            block, more with ties).
        nm: (N, M) keeps N of every M consecutive inputs of a row instead (sparsity ignored).
        blocksize: columns per lazily updated block (128 in the reference).
        percdamp: dampening added to H's diagonal, as a fraction of its mean diagonal.
        mask: an explicit keep-mask (out, in) to reconstruct for, instead of choosing one.
        overwrite_hessian: work in a float32 `hessian`'s own storage (it is left holding the
            dampened H^-1) instead of a copy: a caller done with H saves in x in floats at the
            peak, as the reference does.

    Returns:
        (new weight in `weight`'s dtype, keep-mask, the OBS loss sum of w_q^2 / [H^-1]_qq^2 / 2).

    Raises:
        ValueError: H is not positive definite even after dampening (too few calibration
            inputs for the layer's width, or non-finite activations).
    """
    rows, columns = weight.shape
    W = weight.detach().float().clone()
    Hinv = _upper_inverse_cholesky(W, hessian, percdamp, overwrite_hessian)
    keep = torch.ones_like(W, dtype=torch.bool)
    losses = torch.zeros(rows, device=W.device)  # summed on the device: no sync per column
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        keep1 = _block_keep(W1, torch.diag(Hinv1), mask, nm, sparsity, rows, i1, i2)
        Q1, Err1 = _sweep_block(W1, keep1, Hinv1, nm if mask is None else None, losses)
        W[:, i1:i2] = Q1
        keep[:, i1:i2] = keep1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.to(weight.dtype), keep, float(losses.sum())


def _sweep_block(W1: torch.Tensor, keep1: torch.Tensor, Hinv1: torch.Tensor, nm, losses: torch.Tensor):
    """One block column by column: quantize (prune) a column, spread its error over the block's
    later columns (OBS); N:M masks are chosen per group of M columns on the updated weights.
    Returns the pruned block and the errors the later blocks are updated with."""
    d = torch.diag(Hinv1)
    Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
    for i in range(W1.shape[1]):
        if nm is not None and i % nm[1] == 0:
            g = slice(i, i + nm[1])
            keep1[:, g] = nm_keep_mask(W1[:, g] ** 2 / d[g].view(1, -1) ** 2, *nm)
        w = W1[:, i]
        q = torch.where(keep1[:, i], w, torch.zeros_like(w))
        Q1[:, i] = q
        losses += (w - q) ** 2 / d[i] ** 2 / 2
        err = (w - q) / d[i]
        W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
        Err1[:, i] = err
    return Q1, Err1


def _upper_inverse_cholesky(W: torch.Tensor, hessian: torch.Tensor, percdamp: float,
                            overwrite: bool = False) -> torch.Tensor:
    """Cholesky factor (upper) of the dampened H^-1; zeroes W's columns of dead inputs in place.
    Two (in, in) matrices live at once besides the caller's H, which `overwrite` lets it reuse."""
    columns = W.shape[1]
    H = hessian.detach().to(device=W.device, dtype=torch.float32, copy=not overwrite)
    dead = torch.diag(H) == 0  # inputs that were always zero: their weights never mattered
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    diag = torch.arange(columns, device=W.device)
    H[diag, diag] += percdamp * torch.mean(torch.diag(H))
    L, info = torch.linalg.cholesky_ex(H)
    if info == 0:
        torch.cholesky_inverse(L, out=H)  # H's own storage takes the inverse (not aliased to L)
        del L
        L, info = torch.linalg.cholesky_ex(H, upper=True)
    if info != 0:
        raise ValueError("SparseGPT: the calibration Hessian is not positive definite after dampening; "
                         "use more calibration batches or a larger percdamp")
    return L


def _block_keep(W1: torch.Tensor, d: torch.Tensor, mask, nm, sparsity: float, rows: int, i1: int,
                i2: int) -> torch.Tensor:
    """The keep-mask of one block: given, by saliency at this block's exact share, or all kept
    for N:M (chosen per group of M columns as the block is swept)."""
    if mask is not None:
        return mask[:, i1:i2].to(W1.device, torch.bool).clone()
    if nm is not None:
        return torch.ones_like(W1, dtype=torch.bool)
    # This block's share of the exact total, pruned by lowest saliency.
    k = round(sparsity * rows * i2) - round(sparsity * rows * i1)
    saliency = (W1 ** 2 / d.view(1, -1) ** 2).flatten()
    keep1 = torch.ones(saliency.numel(), dtype=torch.bool, device=W1.device)
    keep1[torch.sort(saliency, stable=True).indices[:k]] = False
    return keep1.view_as(W1)
