"""SIGTERM, SIGINT and the SLURM preemption signal become a request to stop after the current
step, so the run can write a checkpoint before it exits instead of dying mid-step."""

from __future__ import annotations

import os
import signal
import sys
import threading

from swp.errors import RunInterrupted


def _preempt_signal() -> int | None:
    # submitit asks SLURM for this signal shortly before a time limit (USR2 unless overridden).
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)


class StopRequest:
    """A context manager that installs the handlers and records which signal arrived.

    The training loop checks `requested` after each step. A second Ctrl-C stops at once.
    On exit the previous handlers are restored. Outside the main thread (where Python cannot
    install handlers) it does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in {signal.SIGTERM, signal.SIGINT, _preempt_signal()} - {None}:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the user insists
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step, with a checkpoint",
              file=sys.stderr, flush=True)

    def stop(self, where: str, checkpoint) -> None:
        """Called at a safe point once the checkpoint is written: hands the signal to the handler
        that was there before (submitit's, which requeues the job) and raises RunInterrupted."""
        signum = self.signum
        previous = self._previous.get(signum)
        self.__exit__()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, None)  # e.g. submitit: checkpoint the job's call and requeue it
        saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (checkpointing is off)"
        raise RunInterrupted(
            f"interrupted by {signal.Signals(signum).name} {where}; {saved}; "
            "re-run the same command (same output_dir) to resume",
            signum,
        )
