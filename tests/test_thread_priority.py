"""Background threads run at a lower priority than the GUI thread (Linux applies nice values per thread)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from gui.thread_priority import BACKGROUND_NICE, lower_current_thread_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_lowers_only_the_calling_thread_and_only_once():
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    seen: dict[str, int] = {}

    def background() -> None:
        tid = threading.get_native_id()
        lower_current_thread_priority()
        seen["after"] = os.getpriority(os.PRIO_PROCESS, tid)
        lower_current_thread_priority()  # a second call must not lower it further
        seen["again"] = os.getpriority(os.PRIO_PROCESS, tid)

        child = threading.Thread(target=lambda: seen.__setitem__("child", os.getpriority(os.PRIO_PROCESS, 0)))
        child.start()
        child.join()

    t = threading.Thread(target=background)
    t.start()
    t.join()
    expected = min(19, base + BACKGROUND_NICE)
    assert seen["after"] == expected
    assert seen["again"] == expected
    assert seen["child"] == expected  # threads it starts (ONNX Runtime's pool) inherit the priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the GUI thread keeps its own
