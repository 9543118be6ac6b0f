"""A run's trajectory report: trajectories.npz, fig1/fig2 PNGs and the same data on the logger."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swp.analysis.figures import trajectory_panels
from swp.analysis.trajectories import CATEGORIES, Trajectories, kept_and_pruned, random_weights
from swp.infra.io import write_atomic
from swp.logging.base import Logger

NPZ, FIG1, FIG2 = "trajectories.npz", "fig1_trajectories.png", "fig2_patterns.png"


def choose_rows(traj: Trajectories, show: int, seed: int) -> dict[str, np.ndarray]:
    """The rows drawn in each panel: random and kept-vs-pruned (Fig. 1), then Fig. 2's."""
    rows = {
        "random": random_weights(len(traj.values), show, seed),
        "kept_vs_pruned": kept_and_pruned(traj.pruned, show, seed),
    }
    return rows | {name: pick(traj.values, show) for name, (pick, _) in CATEGORIES.items()}


def publish_trajectories(
    traj: Trajectories, out_dir: str | Path, logger: Logger, show: int, seed: int, title: str
) -> dict[str, np.ndarray]:
    """Saves the histories and figures in `out_dir` and logs them as charts and a table.

    Args:
        traj: the recorded histories, with the final pruning decisions.
        out_dir: the run folder.
        logger: receives one line chart per category, the sampled-weights table and the PNGs.
        show: weights drawn per category.
        seed: seeds the random choices.
        title: the figures' title (e.g. the pruner and its setting).

    Returns:
        The rows chosen for each category.
    """
    out_dir = Path(out_dir)
    write_atomic(out_dir / NPZ, traj.save)
    rows = choose_rows(traj, show, seed)
    _draw(traj, rows, out_dir, title)
    _log_charts(traj, rows, logger)
    logger.log_image("trajectories/fig1", str(out_dir / FIG1))
    logger.log_image("trajectories/fig2", str(out_dir / FIG2))
    return rows


def _draw(traj: Trajectories, rows: dict[str, np.ndarray], out_dir: Path, title: str) -> None:
    """Fig. 1 (random; kept and pruned) and Fig. 2 (the patterns) as PNGs in the run folder."""
    n_pruned = int(traj.pruned.sum())
    trajectory_panels(
        out_dir / FIG1,
        traj.steps,
        traj.values,
        traj.pruned,
        [("(a) random weights", rows["random"]), ("(b) kept and pruned weights", rows["kept_vs_pruned"])],
        f"{title}: weight trajectories ({n_pruned}/{len(traj.pruned)} sampled weights pruned)",
    )
    trajectory_panels(
        out_dir / FIG2,
        traj.steps,
        traj.values,
        traj.pruned,
        [(f"({chr(97 + i)}) {label}", rows[name]) for i, (name, (_, label)) in enumerate(CATEGORIES.items())],
        f"{title}: trajectory patterns",
    )


def _log_charts(traj: Trajectories, rows: dict[str, np.ndarray], logger: Logger) -> None:
    """One line chart per category and the table of every sampled weight."""
    steps = traj.steps.tolist()
    for name, chosen in rows.items():
        logger.log_series(
            f"trajectories/{name}",
            steps,
            traj.values[chosen].tolist(),
            traj.labels(chosen),
            f"weight trajectories: {name.replace('_', ' ')}",
            "step",
        )
    membership = {name: set(chosen.tolist()) for name, chosen in rows.items()}
    first, last = traj.values[:, 0], traj.values[:, -1]
    spread = traj.values.max(axis=1) - traj.values.min(axis=1)
    logger.log_table(
        "trajectories/sampled_weights",
        ["tensor", "index", "pruned", "first", "last", "rise_abs", "range", "shown_in"],
        [
            [
                str(traj.tensor[i]),
                int(traj.index[i]),
                bool(traj.pruned[i]),
                float(first[i]),
                float(last[i]),
                float(abs(last[i]) - abs(first[i])),
                float(spread[i]),
                ",".join(n for n, m in membership.items() if i in m),
            ]
            for i in range(len(traj.values))
        ],
    )
