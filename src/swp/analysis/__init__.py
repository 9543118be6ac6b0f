"""Analysis of runs and sweeps: weight trajectories, sweep summaries, their figures."""
