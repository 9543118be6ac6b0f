"""SIGTERM, SIGINT and the SLURM preemption signal become a request to stop after the current
step, so the run can write a checkpoint before it exits instead of dying mid-step.

A sweep whose jobs run in worker processes (``hydra/launcher=local_parallel``) gets the signal in
its parent, which the workers do not share: `SweepStop` there turns it into a stop file that
every job polls with its own request, so the running jobs stop with a checkpoint, the jobs not
started return at once, and the parent then exits with the signal's code.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading

from swp.errors import RunInterrupted

SWEEP_STOP_FILE = "SWP_SWEEP_STOP_FILE"  # set by `SweepStop` for the jobs its workers run


def sweep_stop_requested() -> bool:
    """Whether this job's parallel sweep was asked to stop (its parent's stop file exists)."""
    path = os.environ.get(SWEEP_STOP_FILE)
    return bool(path) and os.path.exists(path)


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
        return self._own_signal() is not None

    def _own_signal(self) -> int | None:
        """The signal this process got, or SIGTERM once the parallel sweep's parent got one."""
        if self.signum is None and sweep_stop_requested():
            self.signum = signal.SIGTERM
        return self.signum

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
        self._announce(signum)

    def _announce(self, signum: int) -> None:
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


class SweepStop(StopRequest):
    """In a sweep's parent whose jobs run in worker processes: SIGTERM, SIGINT and the preemption
    signal create the stop file the jobs poll (`sweep_stop_requested`) instead of ending the
    parent at once, which left the workers running on, unsupervised. The caller exits with
    ``128 + signum`` once every job is back. A second SIGINT stops the parent at once."""

    def __enter__(self) -> "SweepStop":
        self._dir = tempfile.mkdtemp(prefix="swp-sweep-")
        os.environ[SWEEP_STOP_FILE] = os.path.join(self._dir, "stop")  # the workers, started later, inherit it
        return super().__enter__()

    def _announce(self, signum: int) -> None:
        open(os.environ[SWEEP_STOP_FILE], "w").close()
        print(f"\n{signal.Signals(signum).name} received: the running jobs stop after their current step, "
              "with a checkpoint; no further job starts", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        os.environ.pop(SWEEP_STOP_FILE, None)
        shutil.rmtree(self._dir, ignore_errors=True)
