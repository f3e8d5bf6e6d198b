"""Runs inside a child process: the real HemaLens main window, offscreen, measured from the inside.

``python -m bench.gui_probe launch T0``: seconds from T0 (the parent's clock just before it started
this process) to the window's first paint and to the model being ready.
``python -m bench.gui_probe stall FOLDER TIMEOUT STEP_MS``: event-loop stalls while the window
classifies FOLDER, from a 5 ms heartbeat timer; with STEP_MS > 0 a simulated user also steps to the
next image every STEP_MS (the image view then loads each image with its heatmap).
``python -m bench.gui_probe memory FOLDER``: peak resident memory while FOLDER is opened and classified.
``python -m bench.gui_probe review FOLDER N``: the technician's loop, N times: Enter confirms the call (the
decision is committed to the review database, fsync included, before the call returns) and the window moves to
the next image; milliseconds from the key to "saved" and to the next image with its heatmap on screen.
``python -m bench.gui_probe group FOLDER``: a class group at once: the gallery's biggest section selected (its
thumbnails shown), then Enter, Ctrl+Z and a class key on the whole group, each committed in one transaction;
milliseconds each, from the key to its return.
``python -m bench.gui_probe filter FOLDER [TEXT]``: TEXT (default ``_00``) typed into the filter bar a key at a
time, with the table shown and then the gallery; milliseconds per keystroke until the views have taken it (a
keystroke held for a pause in typing costs next to nothing), the last figure of each list the box cleared, and
``*_pause_ms`` the filter that a pause then applies (null when no keystroke was held).
Each mode prints one JSON line. Settings and review records go to a temporary folder (never the
user's); the model is the first bundled one, as on a first start.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEARTBEAT_MS = 5
STEP_MS = 300  # the simulated user's pace (memory run; the stall run takes it as an argument)


def rss_kib() -> tuple[int, int]:
    """(current, peak) resident set size of this process in KiB, from /proc (Linux)."""
    current = peak = 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    except OSError:
        import resource

        peak = current = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return current, peak


def make_window(scratch: Path) -> tuple[Any, Any]:
    """The QApplication and the real MainWindow, set up like gui.app.run_app but with private settings."""
    import onnxruntime  # noqa: F401 - the app imports ORT before Qt, so does the probe
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from gui.app import configure_application
    from gui.main_window import MainWindow
    from gui.review_bridge import ReviewBridge
    from gui.settings import AppSettings

    if os.environ.get("HEMALENS_PROBE_PATCH"):
        import runpy

        runpy.run_path(os.environ["HEMALENS_PROBE_PATCH"])
    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    settings = AppSettings(QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(scratch / "reviews.sqlite3"))
    window.resize(1400, 900)
    return app, window


def shown_window(scratch: Path) -> tuple[Any, Any]:
    """The window on screen with the first bundled model loaded, as on a first start; window None if it did
    not load within two minutes."""
    app, window = make_window(scratch)
    window.show()
    window.start([])
    return app, (window if wait_for(app, window.modelReady, 120) else None)


def wait_for(app: Any, signal: Any, timeout_s: float) -> bool:
    """Run the event loop until ``signal`` fires (True) or the timeout passes (False)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    fired = []
    signal.connect(lambda *_: (fired.append(1), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if not fired:
        loop.exec()
    return bool(fired)


def launch(t0: float, scratch: Path) -> dict[str, Any]:
    from PySide6.QtCore import QEvent, QObject

    marks: dict[str, float] = {"python_started": time.time() - t0}
    app, window = make_window(scratch)
    marks["window_built"] = time.time() - t0

    class FirstPaint(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and "first_paint" not in marks:
                marks["first_paint"] = time.time() - t0
            return False

    spy = FirstPaint()
    app.installEventFilter(spy)
    window.show()
    window.start([])
    ready = wait_for(app, window.modelReady, 120)
    marks["model_ready" if ready else "model_not_ready_after"] = time.time() - t0
    if "first_paint" not in marks:
        app.processEvents()
    app.removeEventFilter(spy)
    window.close()
    return marks


class StallExplainer:
    """Samples the GUI thread's Python stack whenever the heartbeat is late (HEMALENS_PROBE_EXPLAIN=1).

    A watchdog thread looks every 5 ms; stacks seen during stalls longer than ``late_ms`` are counted,
    so the report names the code that held the event loop.
    """

    def __init__(self, late_ms: float = 25.0) -> None:
        import collections
        import threading

        self.last_tick = time.perf_counter()
        self.late = late_ms / 1000
        self.counts: collections.Counter[str] = collections.Counter()
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        import threading
        import traceback

        while not self._stop.wait(0.005):
            if time.perf_counter() - self.last_tick > self.late:
                frames = sys._current_frames()
                for ident, frame in frames.items():
                    if ident == threading.get_ident():
                        continue
                    depth = 6 if ident == self._main else 3
                    stack = traceback.extract_stack(frame)[-depth:]
                    who = "GUI" if ident == self._main else "other"
                    self.counts[who + ": " + " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in
                                                          reversed(stack))] += 1

    def stop(self) -> list[tuple[str, int]]:
        self._stop.set()
        self._thread.join(1)
        return self.counts.most_common(25)


EXPLAINER: StallExplainer | None = None
LONG: list[tuple[float, float]] = []  # (seconds after the folder was opened, gap ms) of gaps over 25 ms
T_OPEN = [0.0]


def _heartbeat(gaps: list[float]) -> Any:
    from PySide6.QtCore import Qt, QTimer

    last = [time.perf_counter(), time.thread_time()]

    def tick() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if now - last[0] > 0.025:  # when, how long, and how much of it the GUI thread spent on the CPU
            LONG.append((round(now - T_OPEN[0], 3), round((now - last[0]) * 1000, 1), round((cpu - last[1]) * 1000, 1)))
        gaps.append(now - last[0])
        last[0], last[1] = now, cpu
        if EXPLAINER is not None:
            EXPLAINER.last_tick = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(tick)
    return timer


def stall(folder: Path, scratch: Path, timeout_s: float, step_ms: int) -> dict[str, Any]:
    from PySide6.QtCore import QTimer

    app, window = shown_window(scratch)
    if window is None:
        return {"error": "the model did not load"}
    idle: list[float] = []
    beat = _heartbeat(idle)
    beat.start()
    wait_for(app, window.detailShown, 1.0)  # nothing is open: one idle second, the noise floor
    beat.stop()
    busy: list[float] = []
    beat = _heartbeat(busy)
    stepper = QTimer(interval=max(step_ms, 1))
    stepper.timeout.connect(lambda: window.step(1))
    global EXPLAINER
    if os.environ.get("HEMALENS_PROBE_EXPLAIN"):
        EXPLAINER = StallExplainer()
    beat.start()
    if step_ms:
        stepper.start()
    start = T_OPEN[0] = time.perf_counter()
    window.engine.listed.connect(lambda *_: LONG.append((round(time.perf_counter() - start, 3), "listed")))
    window.open_paths([folder])
    LONG.append((round(time.perf_counter() - start, 3), "open_paths returned"))
    finished = wait_for(app, window.batchFinished, timeout_s)
    elapsed = time.perf_counter() - start
    beat.stop()
    stepper.stop()
    if EXPLAINER is not None:
        for stack, count in EXPLAINER.stop():
            print(f"STALL {count:4d} x 5 ms: {stack}", file=sys.stderr)
    rows = window.model.rowCount()
    done = sum(1 for item in window.model.items() if item.probabilities is not None)
    window.close()
    interval = HEARTBEAT_MS / 1000
    return {
        "finished": finished, "images": rows, "classified": done, "seconds": elapsed, "step_ms": step_ms,
        "stalls_ms": [max(0.0, g - interval) * 1000 for g in busy],
        "idle_stalls_ms": [max(0.0, g - interval) * 1000 for g in idle[1:]],
        "model": window.model_info.name if window.model_info else None, "long_gaps": LONG,
    }


def memory(folder: Path, scratch: Path, timeout_s: float) -> dict[str, Any]:
    from PySide6.QtCore import QTimer

    app, window = shown_window(scratch)
    if window is None:
        return {"error": "the model did not load"}
    ready_rss = rss_kib()[0]
    thumbs = []
    window.thumbnails.ready.connect(thumbs.append)
    samples: list[int] = []
    sampler = QTimer(interval=250)
    sampler.timeout.connect(lambda: samples.append(rss_kib()[0]))
    stepper = QTimer(interval=STEP_MS)
    stepper.timeout.connect(lambda: window.step(1))
    sampler.start()
    stepper.start()
    start = time.perf_counter()
    window.open_paths([folder])
    finished = wait_for(app, window.batchFinished, timeout_s)
    elapsed = time.perf_counter() - start
    sampler.stop()
    stepper.stop()
    rows = window.model.rowCount()
    done = sum(1 for item in window.model.items() if item.probabilities is not None)
    current, peak = rss_kib()
    window.close()
    return {
        "finished": finished, "images": rows, "classified": done, "seconds": elapsed,
        "rss_ready_mib": ready_rss / 1024, "rss_end_mib": current / 1024, "rss_peak_mib": peak / 1024,
        "rss_sampled_max_mib": max(samples, default=0) / 1024, "thumbnails_decoded": len(thumbs),
        "model": window.model_info.name if window.model_info else None,
    }


def _filesystem(path: Path) -> str:
    """The file system type holding ``path`` (from /proc/mounts: the fsync cost depends on it)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            mount, fstype = line.split()[1:3]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except (OSError, ValueError):
        pass
    return kind


def classified_window(folder: Path, scratch: Path) -> tuple[Any, Any, str | None]:
    """The window with FOLDER opened and classified; the error instead when it could not get there."""
    app, window = shown_window(scratch)
    if window is None:
        return app, None, "the model did not load"
    window.open_paths([folder])
    if not wait_for(app, window.batchFinished, 600):
        return app, None, "the folder was not classified in 600 s"
    return app, window, None


def review(folder: Path, scratch: Path, decisions: int) -> dict[str, Any]:
    app, window, error = classified_window(folder, scratch)
    if error:
        return {"error": error}
    window.act_auto.setChecked(True)
    window.set_current_row(0)
    wait_for(app, window.detailShown, 10)
    saved, shown = [], []
    for _ in range(min(decisions, window.model.rowCount() - 1)):
        start = time.perf_counter()
        window.confirm_call()  # returns once the decision is committed; the next image is then requested
        saved.append((time.perf_counter() - start) * 1000)
        if not wait_for(app, window.detailShown, 10):
            return {"error": "the next image was not shown within 10 s"}
        shown.append((time.perf_counter() - start) * 1000)
    reviewed = sum(item.reviewed_id is not None for item in window.model.items())
    window.close()
    return {"decisions": len(saved), "reviewed": reviewed, "saved_ms": saved, "next_shown_ms": shown,
            "images": window.model.rowCount(), "db_filesystem": _filesystem(scratch),
            "model": window.model_info.name if window.model_info else None}


def group(folder: Path, scratch: Path) -> dict[str, Any]:
    app, window, error = classified_window(folder, scratch)
    if error:
        return {"error": error}
    window.tabs.setCurrentWidget(window.gallery)
    app.processEvents()
    section = max(window.gallery._sections, key=lambda s: s.count())
    rows = section.source_rows()
    window.set_current_row(rows[0])
    section.view.setFocus()
    section.view.selectAll()  # Ctrl+A
    paths = [window.model.item(r).path for r in rows]
    for path in paths:  # as if scrolled through: a group is decided only on thumbnails that were shown
        window.thumbnails.get(path)
    deadline = time.time() + 120
    while not all(window.thumbnails.shown(p) for p in paths) and time.time() < deadline:
        app.processEvents()
    times = {}
    for name, key in (("enter_ms", window.confirm_call), ("undo_ms", window.undo_decision),
                      ("class_key_ms", lambda: window.assign_index(0))):
        start = time.perf_counter()
        key()
        times[name] = (time.perf_counter() - start) * 1000
        app.processEvents()
    reviewed = sum(window.model.item(r).reviewed_id is not None for r in rows)
    window.close()
    return {"group": len(rows), "section": section.name, "reviewed_after": reviewed, **times,
            "images": window.model.rowCount(), "db_filesystem": _filesystem(scratch),
            "model": window.model_info.name if window.model_info else None}


def filter_typing(folder: Path, scratch: Path, text: str) -> dict[str, Any]:
    """Type TEXT into the filter bar, one key at a time, with the table and then the gallery shown; each
    keystroke is timed until its events are done (the filter applied and the views laid out)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    app, window, error = classified_window(folder, scratch)
    if error:
        return {"error": error}
    edit = window.batch_panel.filter_text
    times: dict[str, list[float]] = {}
    for view in ("table", "gallery"):
        window.tabs.setCurrentWidget(window.batch_panel.table if view == "table" else window.gallery)
        app.processEvents()
        edit.setFocus()
        keys = []
        for char in text:
            start = time.perf_counter()
            QTest.keyClick(edit, char)
            app.processEvents()
            keys.append((time.perf_counter() - start) * 1000)
        held = not window.batch_panel.proxy.has_text(edit.text())  # keystrokes held for a pause in typing
        start = time.perf_counter()
        window.batch_panel.apply_filter_text()  # what that pause applies
        times[f"{view}_pause_ms"] = (time.perf_counter() - start) * 1000 if held else None
        shown = window.batch_panel.proxy.rowCount()
        start = time.perf_counter()
        QTest.keyClick(edit, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        QTest.keyClick(edit, Qt.Key.Key_Backspace)
        window.batch_panel.apply_filter_text()
        app.processEvents()
        keys.append((time.perf_counter() - start) * 1000)  # the last figure: clearing the box
        times[f"{view}_key_ms"] = keys
    window.close()
    return {**times, "text": text, "shown_at_end": shown, "images": window.model.rowCount(),
            "model": window.model_info.name if window.model_info else None}


def main(argv: list[str]) -> int:
    from hemalens.native_memory import return_large_buffers_to_os

    return_large_buffers_to_os()  # as the app's own entry point (hemalens.cli.main) does
    mode = argv[0]
    with tempfile.TemporaryDirectory(prefix="hemalens-gui-probe-") as tmp:
        scratch = Path(tmp)
        if mode == "launch":
            result = launch(float(argv[1]), scratch)
        elif mode == "stall":
            result = stall(Path(argv[1]), scratch, float(argv[2]), int(argv[3]))
        elif mode == "review":
            result = review(Path(argv[1]), scratch, int(argv[2]))
        elif mode == "group":
            result = group(Path(argv[1]), scratch)
        elif mode == "filter":
            result = filter_typing(Path(argv[1]), scratch, argv[2] if len(argv) > 2 else "_00")
        elif mode == "memory":
            result = memory(Path(argv[1]), scratch, float(argv[2]) if len(argv) > 2 else 600)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # No Qt teardown: the window's QSettings would write settings.ini at exit and so make the scratch folder,
    # removed when main returned, again (a leftover hemalens-gui-probe-* folder in /tmp per probe).
    os._exit(code)
