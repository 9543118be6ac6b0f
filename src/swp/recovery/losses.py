"""The distillation terms as pure tensor functions (unit-tested against hand-computed values).

- `kd_logits`: KL(teacher || student) between the next-token distributions softened by a
  temperature T, averaged over token positions and scaled by T^2, so its gradients keep the
  task loss's scale whatever T is (Hinton et al. 2015).
- `kd_hidden`: SquareHead (Kurtic et al. 2023, arXiv 2310.06927): per transformer block,
  MSE(student hidden, teacher hidden) / MSE(teacher hidden, 0), averaged over the blocks; the
  normalisation makes every block count alike whatever the scale of its activations.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.nn import functional as F


def kd_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over positions of KL(softmax(teacher / T) || softmax(student / T)).

    Args:
        student, teacher: logits of the same shape (..., vocab); every position counts once.
        temperature: T > 0 (1: the models' own distributions).

    Returns:
        A scalar (float32, whatever the logits' dtype: autocast's bf16 loses the small terms).
    """
    vocab = student.shape[-1]
    log_s = F.log_softmax(student.float().reshape(-1, vocab) / temperature, dim=-1)
    log_t = F.log_softmax(teacher.float().reshape(-1, vocab) / temperature, dim=-1)
    # sum_v p_t (log p_t - log p_s) per position; "batchmean" divides by the positions.
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


def kd_hidden(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
              reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """SquareHead: mean over blocks l of mean((h_s^l - h_t^l)^2) / mean((h_t^l)^2).

    Args:
        student, teacher: each block's output hidden states, in block order, same shapes.
        reduce: sums a tensor over the ranks in place (DDP; None: one process). Each rank holds
            a slice of the batch: the teacher's mean square (no gradient) is taken over the whole
            batch, so the ranks' terms, averaged by DDP's gradient mean, are one process's term.

    Raises:
        ValueError: the two lists differ in length or are empty.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"kd_hidden needs one student and one teacher output per block, got {len(student)} "
                         f"and {len(teacher)}")
    with torch.no_grad():
        sums = torch.stack([t.float().pow(2).sum() for t in teacher] +
                           [torch.tensor(float(t.numel()), device=t.device) for t in teacher])
        if reduce is not None:
            reduce(sums)
        n = len(teacher)
        # A block whose teacher output is exactly zero would divide by zero: its floor is tiny.
        power = (sums[:n] / sums[n:]).clamp_min(torch.finfo(torch.float32).tiny)
    terms = [F.mse_loss(s.float(), t.float()) / p for s, t, p in zip(student, teacher, power)]
    return torch.stack(terms).mean()
