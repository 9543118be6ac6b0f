"""Matplotlib renderings of the paper's figures, written straight to PNG files.

Figures are built on matplotlib's object API with the Agg canvas, so rendering needs no
display and never changes pyplot's global backend for the caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

KEPT_COLOUR, PRUNED_COLOUR = "tab:blue", "tab:red"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    """Writes through a temporary file and a rename: parallel sweep jobs may redraw a figure."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


def trajectory_panels(
    path: str | Path,
    steps: np.ndarray,
    values: np.ndarray,
    pruned: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray]],
    title: str,
) -> Path:
    """One panel per (panel title, rows): each row's value over the training steps.

    Weights the final masks prune are drawn dashed in red, kept ones solid in blue, so every
    panel also shows what the pruner decided about the weights it contains.
    """
    fig = _figure(4.2 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel_title, rows) in zip(axes, panels):
        for r in rows:
            ax.plot(
                steps, values[r], lw=1.2, alpha=0.9,
                color=PRUNED_COLOUR if pruned[r] else KEPT_COLOUR, ls="--" if pruned[r] else "-",
            )
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("weight value")
    from matplotlib.lines import Line2D

    axes[-1].legend(
        handles=[Line2D([], [], color=KEPT_COLOUR, ls="-"), Line2D([], [], color=PRUNED_COLOUR, ls="--")],
        labels=["kept", "pruned"], fontsize=8, loc="best",
    )
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def compression_curve(
    path: str | Path,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    metric: str,
    dense: float | None = None,
    before_finetune: dict[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    title: str = "",
) -> Path:
    """Final validation `metric` versus sparsity (%), one line per pruner (Figs. 3-4).

    Args:
        curves: pruner -> (sparsity %, final metric), sorted by sparsity.
        metric: the y-axis name (``loss`` or ``mae``).
        dense: the dense model's metric, drawn as a horizontal reference line.
        before_finetune: pruner -> (sparsity %, metric right after pruning), drawn thin and
            dotted in the same colour, when the schedule fine-tuned.
    """
    fig = _figure(6.0, 4.2)
    ax = fig.subplots()
    colours = {}
    for name, (xs, ys) in curves.items():
        (line,) = ax.plot(xs, ys, marker="o", lw=1.6, label=f"{name}")
        colours[name] = line.get_color()
    for name, (xs, ys) in (before_finetune or {}).items():
        ax.plot(xs, ys, marker=".", lw=0.9, ls=":", alpha=0.7, color=colours.get(name), label=f"{name}, before fine-tune")
    if dense is not None and np.isfinite(dense):
        ax.axhline(dense, color="0.3", ls="--", lw=1.0, label=f"dense ({dense:.4g})")
    ax.set_xlabel("sparsity of the pruned tensors (%)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title or f"Compression versus validation {metric}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
