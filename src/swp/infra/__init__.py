"""Run infrastructure: checkpoints, the run folder, the dense cache, signals, RNG, file I/O."""
