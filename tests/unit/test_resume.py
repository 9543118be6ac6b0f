"""Exact resume: a run stopped anywhere and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal

import pytest

from swp.errors import RunInterrupted


def test_preemption_signal_checkpoints_first_then_hands_over_to_submitit():
    """Under SLURM, submitit's USR2 handler requeues the job; ours runs first (finish the step,
    checkpoint) and then calls it, so the requeued job finds the checkpoint."""
    from swp.infra.signals import StopRequest

    handed_over = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: handed_over.append(signum))
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stop.requested and handed_over == []  # the step and checkpoint come first
            with pytest.raises(RunInterrupted, match="SIGUSR2 at train step 5; checkpoint ck/5"):
                stop.stop("at train step 5", "ck/5")
        assert handed_over == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


