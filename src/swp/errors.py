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


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An exception's whole message on one line.

    Libraries write multi-line messages whose first line is only a preamble (transformers:
    "Couldn't instantiate the backend tokenizer from one of:", then the reasons), so keeping
    the first line loses the cause; the lines are joined instead (and very long ones cut).
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
