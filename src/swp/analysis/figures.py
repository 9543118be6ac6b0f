"""Matplotlib renderings of the paper's figures, written straight to PNG files.

Figures are built on matplotlib's object API with the Agg canvas, so rendering needs no
display and never changes pyplot's global backend for the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from swp.infra.io import write_atomic

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
    write_atomic(path, fig.savefig)
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
    lines: Sequence[dict],
    ylabel: str,
    title: str = "",
    band_note: str = "",
    log_y: bool = False,
) -> Path:
    """Validation metric versus sparsity (%) (Figs. 3-4) from the lines of
    `swp.analysis.sweep_summary.figure_lines`, each a dict with ``label`` and ``kind``:

    - ``curve``: ``x``, ``y`` (means over seeds) and ``lo``, ``hi`` (the band), one colour each;
    - ``before_finetune``: ``x``, ``y``, drawn thin and dotted in its pruner's colour;
    - ``dense`` and ``control``: a horizontal reference line at ``y`` with a light ``lo``-``hi`` band.

    Args:
        ylabel: the y axis' name (the task's headline metric).
        band_note: what the bands are (e.g. "band: mean ± 1 std over seeds"), the legend's title.
        log_y: log-scale y axis (perplexity).
    """
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    colours = {}
    for line in lines:
        if line["kind"] != "curve":
            continue
        (drawn,) = ax.plot(line["x"], line["y"], marker="o", lw=1.6, label=line["label"])
        colours[line["label"]] = drawn.get_color()
        if any(lo != hi for lo, hi in zip(line["lo"], line["hi"])):
            ax.fill_between(line["x"], line["lo"], line["hi"], color=drawn.get_color(), alpha=0.2, lw=0)
    for line in lines:
        if line["kind"] == "before_finetune":
            base = line["label"].removesuffix(", before fine-tune")
            ax.plot(line["x"], line["y"], marker=".", lw=0.9, ls=":", alpha=0.7, color=colours.get(base),
                    label=line["label"])
    styles = {"dense": ("0.45", "--"), "control": ("black", "-.")}
    for line in lines:
        if line["kind"] in styles and np.isfinite(line["y"]):
            colour, ls = styles[line["kind"]]
            ax.axhline(line["y"], color=colour, ls=ls, lw=1.1, label=f"{line['label']} ({line['y']:.4g})")
            if line.get("lo") is not None and line["lo"] != line["hi"]:
                ax.axhspan(line["lo"], line["hi"], color=colour, alpha=0.08, lw=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("sparsity of the pruned tensors (%)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Compression versus {ylabel}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=band_note or None, title_fontsize=7)
    return _save(fig, path)


def token_curves(path: str | Path, panels: Sequence[dict], ylabel: str, title: str = "", band_note: str = "",
                 xlabel: str = "training tokens", log_x: bool = False, zoom_late: bool = True) -> Path:
    """Validation metric against training tokens (the bake-off), one panel per sparsity point,
    from `swp.analysis.bakeoff.curve_panels` (or `budget_panels`): each panel ``{"title",
    "lines"}``, each line ``{"label", "x", "y", "lo", "hi"}`` (mean over seeds and its band). A
    recipe keeps its colour in every panel. With `zoom_late` the y axis spans the second half of
    the token axis (the early, dense part of every curve is far above and would flatten the
    differences that matter)."""
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig = _figure(max(4.8 * cols, 7.2), 3.8 * rows)  # one panel: room for the title
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    labels = sorted({line["label"] for p in panels for line in p["lines"]})
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, panel in zip(axes, panels):
        _token_panel(ax, panel, colours, zoom_late)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        if log_x:  # ticks at the budgets themselves: a short log span gets overlapping minor labels
            ax.set_xscale("log")
            ticks = sorted({x for line in panel["lines"] for x in line["x"]})
            ax.set_xticks(ticks, [f"{x:,.0f}" for x in ticks], fontsize=7)
            ax.xaxis.set_minor_locator(_null_locator())
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, title=band_note or None, title_fontsize=7)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _null_locator():
    from matplotlib.ticker import NullLocator  # matplotlib loads only when a figure is drawn

    return NullLocator()


def _token_panel(ax, panel: dict, colours: dict, zoom_late: bool) -> None:
    late = []
    for line in panel["lines"]:
        colour = colours[line["label"]]
        ax.plot(line["x"], line["y"], marker=".", lw=1.4, color=colour, label=line["label"],
                ls="--" if line["label"] == "dense" else "-")
        if any(lo != hi for lo, hi in zip(line["lo"], line["hi"])):
            ax.fill_between(line["x"], line["lo"], line["hi"], color=colour, alpha=0.15, lw=0)
        end = max(line["x"]) if line["x"] else 0
        late += [v for x, lo, hi in zip(line["x"], line["lo"], line["hi"]) if x >= end / 2 for v in (lo, hi)]
    finite = [v for v in late if np.isfinite(v)]
    if finite and zoom_late:
        pad = 0.05 * (max(finite) - min(finite) or abs(max(finite)) or 1.0)
        ax.set_ylim(min(finite) - pad, max(finite) + pad)
    ax.set_title(panel["title"], fontsize=9)
    ax.grid(alpha=0.3)
