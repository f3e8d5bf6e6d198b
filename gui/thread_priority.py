"""Background threads yield the CPU to the GUI thread.

On a 2-core workstation the batch classifier, its ONNX Runtime threads and the thumbnail decoder
otherwise compete on equal terms with the event loop, and a window that just received a folder's
file list had to wait its turn (measured stalls of 60-100 ms). A higher nice value for those threads
costs them nothing when the GUI is idle. Linux applies nice values per thread, and threads created
afterwards (ONNX Runtime's pool, when the model is loaded on the lowered thread) inherit it; elsewhere
this is a no-op and Qt's thread priorities apply.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICE = 10
# How long a thread may hold the interpreter while another waits for it (Python's default: 5 ms).
# Every Qt event the GUI thread handles in Python needs the interpreter back from the worker threads
# (listing, hashing, preprocessing); at 5 ms a few such hand-offs in a row made a 30-70 ms stall when
# a folder opened (bench.gui_probe, 1,000 images, 2 cores). At 1 ms that stall went away and the
# batch did not get slower (7.1-7.8 s vs 7.4-8.8 s).
GUI_SWITCH_INTERVAL_S = 0.001


def favour_gui_thread() -> None:
    """Let the GUI thread get the interpreter back sooner from busy worker threads (process-wide)."""
    sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


def lower_current_thread_priority(step: int = BACKGROUND_NICE) -> None:
    """Raise this thread's nice value by ``step`` above the process's, once (later calls do nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        if os.getpriority(os.PRIO_PROCESS, tid) == base:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, base + step))
    except OSError:
        pass  # not permitted or not supported: the thread keeps its priority
