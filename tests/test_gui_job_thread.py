"""The one-job-at-a-time runner behind report export, augmenting, the model check and the model suggestion."""

from __future__ import annotations

import threading

from gui.job_thread import SingleJobThread
from inference.errors import HemaLensError


def test_a_job_runs_off_the_gui_thread_and_one_at_a_time(qtbot) -> None:
    runner = SingleJobThread("test-job", unexpected_prefix="Not done: ")
    release = threading.Event()
    ran_on: list[threading.Thread] = []

    def job() -> int:
        ran_on.append(threading.current_thread())
        release.wait(10)
        return 42

    try:
        with qtbot.waitSignal(runner.finished, timeout=10000) as finished:
            assert runner._submit(job)
            assert runner.busy and not runner._submit(job)  # refused while the first one runs
            release.set()
        assert finished.args == [42] and not runner.busy
        assert ran_on == [ran_on[0]] and ran_on[0] is not threading.main_thread()
    finally:
        runner.shutdown()


def test_failures_become_messages_and_free_the_runner(qtbot) -> None:
    runner = SingleJobThread("test-job", unexpected_prefix="Not done: ")

    def written_for_the_user() -> None:
        raise HemaLensError("The disk is full.")

    def unexpected() -> None:
        raise KeyError("x")

    try:
        with qtbot.waitSignal(runner.failed, timeout=10000) as failed:
            runner._submit(written_for_the_user)
        assert failed.args == ["The disk is full."] and not runner.busy
        with qtbot.waitSignal(runner.failed, timeout=10000) as failed:
            runner._submit(unexpected)
        assert failed.args == ["Not done: KeyError: 'x'"] and not runner.busy
        with qtbot.waitSignal(runner.finished, timeout=10000) as finished:  # the thread is still alive
            runner._submit(lambda: "next")
        assert finished.args == ["next"]
    finally:
        runner.shutdown()


def test_warm_up_runs_once_on_the_worker_and_its_failure_is_harmless(qtbot) -> None:
    calls: list[threading.Thread] = []

    def warm() -> None:
        calls.append(threading.current_thread())
        raise ImportError("optional")

    runner = SingleJobThread("test-job", warm)
    try:
        runner.warm_up()
        runner.warm_up()
        with qtbot.waitSignal(runner.finished, timeout=10000):  # queued behind the warm-up on the same thread
            runner._submit(lambda: None)
        assert len(calls) == 1 and calls[0] is not threading.main_thread()
    finally:
        runner.shutdown()
