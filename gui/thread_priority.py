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
