"""Work around a reference-count bug in the installed PySide6 before any signal is emitted.

PySide6 6.12.0 (with CPython < 3.12) returns a borrowed ``True`` from ``SignalInstance.emit()``:
every emit from Python drops one reference to ``True`` that was never taken. A few hundred emits
later CPython frees ``True`` and aborts ("bool_dealloc: deallocating True or False"), so a batch
review would crash the app. CPython 3.12+ makes ``True`` immortal and is immune.

The probe below emits a signal a few times and checks whether ``True`` lost references; only
then is ``True`` given a very large reference count, which is what 3.12+ does for every
interpreter (the object is never meant to be freed). Nothing changes on a fixed PySide6.
"""

from __future__ import annotations

import ctypes
import sys

_IMMORTAL_BOOST = 1 << 40
_applied = False


def _emit_leaks_true() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    for _ in range(max(0, lost)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))  # give back what the probe took
    return lost >= 8


def apply_signal_refcount_workaround() -> bool:
    """Detect the emit() refcount leak and make ``True`` effectively immortal; True if applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if _emit_leaks_true():
        ctypes.c_ssize_t.from_address(id(True)).value += _IMMORTAL_BOOST
        _applied = True
    return _applied
