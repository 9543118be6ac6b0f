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




def test_ranks_answer_the_agreed_stop_even_when_a_signal_lands_during_the_all_reduce(monkeypatch):
    """A signal handled while a rank waits in the stop check's all-reduce sets that rank's signum
    only; answering from it stopped that rank alone while the others, told 'no', went on into
    the next step's collectives: a hang (seen under load in the torchrun SIGTERM test)."""
    import torch.distributed as dist

    from swp.distributed.state import AgreedStopRequest

    stop = AgreedStopRequest()
    reduced = []

    def all_reduce(flag, op):  # the other rank had no signal; ours arrives during the call
        reduced.append(int(flag))  # the other rank's 0 leaves the maximum as it is
        stop.signum = stop.signum or signal.SIGTERM

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    assert stop.requested is False  # the agreed answer of this round: nobody had a signal yet
    assert stop.requested is True and reduced == [0, signal.SIGTERM]  # the next round agrees on it
