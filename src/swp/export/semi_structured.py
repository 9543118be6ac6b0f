"""Run a 2:4-pruned model on NVIDIA sparse tensor cores (PyTorch semi-structured sparsity).

`torch.sparse.to_sparse_semi_structured` keeps a 2:4 weight as its 50% kept values plus
2-bit position metadata, and `F.linear` with such a weight runs the CUTLASS / cuSPARSELt sparse
kernels. CUDA only (Ampere or later), fp16/bf16 for the speed-up; on CPU there is no such kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from swp.pruning.nm import nm_violations


def semi_structured_linears_(model: nn.Module, names: list[str] | None = None) -> list[str]:
    """Swaps the weight of every 2:4-sparse Linear (or those named) for its semi-structured form.

    The model must already be on a CUDA device in fp16/bf16 and in eval mode (the sparse
    weight is for inference). Linear weights that are not 2:4 are left dense.

    Returns:
        The names of the converted weights.

    Raises:
        RuntimeError: no CUDA device, or a named weight is not 2:4 sparse.
    """
    from torch.sparse import to_sparse_semi_structured

    if not torch.cuda.is_available():
        raise RuntimeError("semi-structured sparse kernels need CUDA")
    done = []
    for mod_name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        name = f"{mod_name}.weight"
        if names is not None and name not in names:
            continue
        w = module.weight.detach()
        if w.shape[-1] % 4 or nm_violations(w, 2, 4):
            if names is not None:
                raise RuntimeError(f"{name} is not 2:4 sparse")
            continue
        module.weight = nn.Parameter(to_sparse_semi_structured(w), requires_grad=False)
        done.append(name)
    return done
