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


def _virtual_call_leaks_none() -> bool:
    """Whether each call from C++ into a Python override (``data()``, ``paintEvent()``, event filters...)
    drops a reference to ``None``: the same PySide6 6.12.0 bug. The table model's ``data()`` alone is
    called thousands of times a second while a batch table repaints, so ``None`` would be freed and
    the app abort ("none_dealloc") within minutes of a long batch (found by bench/ on 3,000 images)."""
    from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

    class _Model(QAbstractListModel):
        def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
            return 1

        def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> None:
            return None

    model = _Model()
    index = model.index(0, 0)
    before = sys.getrefcount(None)
    for _ in range(8):
        index.data()
    lost = before - sys.getrefcount(None)
    for _ in range(max(0, lost)):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
    return lost >= 8


def apply_signal_refcount_workaround() -> bool:
    """Detect the refcount leaks and make ``True`` / ``None`` effectively immortal; True if applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if _emit_leaks_true():
        ctypes.c_ssize_t.from_address(id(True)).value += _IMMORTAL_BOOST
        _applied = True
    if _virtual_call_leaks_none():
        ctypes.c_ssize_t.from_address(id(None)).value += _IMMORTAL_BOOST
        _applied = True
    return _applied
