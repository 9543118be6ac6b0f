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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_parallel_sweeps_stop_file_stops_the_jobs_requests_as_sigterm(sig, capsys):
    """`SweepStop` in a sweep's parent turns a signal into the file every job's request polls;
    the handlers and the environment are as before once it exits."""
    from swp.infra.signals import SWEEP_STOP_FILE, StopRequest, SweepStop, sweep_stop_requested

    before = signal.getsignal(sig)
    with SweepStop() as parent:
        path = os.environ[SWEEP_STOP_FILE]
        job = StopRequest()  # a worker's, not entered: here its handlers would replace the parent's
        assert not job.requested and not sweep_stop_requested()
        os.kill(os.getpid(), sig)
        assert parent.signum == sig and os.path.exists(path) and sweep_stop_requested()
        assert job.requested and job.signum == signal.SIGTERM  # the job saw no signal of its own
        with pytest.raises(RunInterrupted, match="interrupted by SIGTERM at train step 3"):
            job.stop("at train step 3", "ck/3")
    assert SWEEP_STOP_FILE not in os.environ and not os.path.exists(path)
    assert signal.getsignal(sig) == before
    assert "the running jobs stop after their current step" in capsys.readouterr().err


