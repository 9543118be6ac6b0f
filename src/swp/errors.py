"""The exception types a user sees as one line (the entrypoint prints them and exits non-zero)."""


class ConfigError(ValueError):
    """Bad input found before (or instead of) training; the message says what to fix."""


class CheckpointError(ConfigError):
    """A checkpoint (or dense-cache entry) is corrupt, incomplete or belongs to another run."""


class RunError(RuntimeError):
    """The run failed in a known way (non-finite loss, a failed write, sparsity drift); the
    message names where and what is left on disk."""


class RunInterrupted(RunError):
    """SIGTERM / SIGINT / the SLURM preemption signal stopped the run after a checkpoint.

    Attributes:
        signum: the signal that asked the run to stop (the exit status is 128 + signum).
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
