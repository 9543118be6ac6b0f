"""The explicit training loop, the phase schedule and the run's artifacts."""
