"""The pruned model as a Hugging Face folder, verified by reloading it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Callable

import torch
from torch import nn

from swp.config_types import Check, Runtime, check_arguments
from swp.pruning.threshold import sparsity

FromRun = Annotated[object, Runtime("passed by the launcher after the run")]


def _inside(subdir: str) -> bool:
    """A relative folder that stays inside the run folder."""
    parts = subdir.replace("\\", "/").split("/")
    return bool(subdir.strip()) and not subdir.startswith("/") and ".." not in parts


class ExportMismatchError(RuntimeError):
    """The reloaded model differs from the one that was saved."""


def save_pretrained(model: nn.Module, target: Path, tokenizer=None) -> Path | None:
    """``save_pretrained`` of a Hugging Face model (dense weights with the pruned zeros, loadable
    with ``from_pretrained``) and of its tokenizer if given; None for a model without it.

    The one writer of Hugging Face folders: the run's export stage and ``scripts/export.py``
    both call it.
    """
    if not hasattr(model, "save_pretrained"):
        return None
    target.mkdir(parents=True, exist_ok=True)
    for part in (model, tokenizer):
        if part is not None:
            part.save_pretrained(str(target))
    return target


def export_hf_pretrained(
    *,
    model: Annotated[nn.Module, Runtime("the pruned model")],
    task: FromRun,
    pruned: Annotated[dict[str, nn.Parameter], Runtime("the pruner's parameters")],
    out_dir: Annotated[str | Path, Runtime("the run folder")],
    device: Annotated[torch.device, Runtime("the run's device")],
    autocast: Annotated[Callable[[], AbstractContextManager], Runtime("the run's precision")],
    subdir: Annotated[str, Check(_inside, "a folder name inside the run folder")] = "hf_export",
    check_metrics: bool = True,
) -> dict:
    """Saves the model with ``save_pretrained`` (and the task's tokenizer) and reloads it.

    The reload is compared tensor by tensor with the saved model, so the sparsity (and every
    other weight) is checked exactly, not just summarised; the task's metrics are then computed
    on the reloaded model, so the folder is known to give the run's perplexity.

    Args:
        model: a ``transformers`` PreTrainedModel.
        task: the run's task; its ``tokenizer`` (if any) is saved too, its ``evaluate`` scores the reload.
        pruned: the pruner's parameters (name -> tensor) whose sparsity is reported.
        out_dir, subdir: the export goes into ``out_dir/subdir``.
        device, autocast: where and how the reloaded model is evaluated.
        check_metrics: evaluate the reloaded model (the exact weight comparison runs regardless).

    Returns:
        Fields for results.json: ``export_dir``, ``export_bytes``, ``export_sparsity`` and
        ``export_val_<metric>`` for every metric of the task.

    Raises:
        ExportMismatchError: a reloaded tensor is missing or differs from the saved one.
    """
    check_arguments(export_hf_pretrained, locals(), at="export")
    from transformers import AutoModelForCausalLM

    target = save_pretrained(model, Path(out_dir) / subdir, getattr(task, "tokenizer", None))
    if target is None:
        raise TypeError(f"export=hf_pretrained needs a transformers model, got {type(model).__name__}: use export=none")
    reloaded = AutoModelForCausalLM.from_pretrained(target, dtype=next(model.parameters()).dtype).to(device)
    _check_equal(model.state_dict(), reloaded.state_dict(), target)
    out = {"export_dir": str(target), "export_bytes": sum(f.stat().st_size for f in target.iterdir() if f.is_file()),
           "export_sparsity": sparsity([reloaded.get_parameter(n) for n in pruned])}
    if check_metrics:
        out |= {f"export_val_{k}": v for k, v in task.evaluate(reloaded, device, autocast).items()}
    del reloaded
    return out


def _check_equal(saved: dict, loaded: dict, target: Path) -> None:
    """Every saved tensor came back bit for bit (so the export's sparsity is the run's)."""
    for name, tensor in saved.items():
        if name not in loaded:
            raise ExportMismatchError(f"{name} is missing from the reloaded export in {target}")
        if not torch.equal(loaded[name], tensor):
            raise ExportMismatchError(f"{name} differs after reloading the export in {target}")
