"""The PySide6 desktop application."""

from gui.qt_compat import apply_signal_refcount_workaround

apply_signal_refcount_workaround()
