"""Start the desktop app: the QApplication, its look, and the main window (``hemalens [PATH...]``)."""

from __future__ import annotations

import sys
from typing import Any

STYLE = """
QMainWindow, QWidget#sidePanel { background: #f6f7f9; }
QLabel#banner_warning { background: #fff4d6; color: #5c4200; border-bottom: 1px solid #e0b84a; padding: 6px 12px; }
QLabel#banner_error { background: #fde8e6; color: #7a1c14; border-bottom: 1px solid #e5a29b; padding: 6px 12px; }
QWidget#augmentOffer, QWidget#modelSuggestion { background: #e7f0fa; color: #173a5e; border-bottom: 1px solid #a9c6e6; }
QLabel#callDetail, QLabel#hintLabel, QLabel#conversionLabel { color: #4b5563; }
QLabel#hintLabel { font-size: 11px; }
QLabel#reviewLabel { color: #1f2933; background: #eef2f7; border-radius: 4px; padding: 6px; }
QLabel#warningLabel { color: #7a4b00; background: #fff4d6; border-radius: 4px; padding: 6px; }
QLabel#sectionTitle { font-weight: 600; color: #1f2933; padding: 4px 0; }
QListView { background: white; border: none; selection-background-color: #cfe0f5; selection-color: #111827; }
QHeaderView::section { background: #eef1f5; color: #374151; border: none; border-right: 1px solid #dde2e8;
                       padding: 4px 6px; }
QTabWidget::pane { border: none; }
QStatusBar { background: #eef1f5; }
"""


def configure_application(app: Any) -> None:
    """The look and the thread hand-off the window is designed and measured with (app and benchmark)."""
    from gui.thread_priority import favour_gui_thread

    app.setStyle("Fusion")
    app.setPalette(light_palette())
    app.setStyleSheet(STYLE)
    favour_gui_thread()


def light_palette() -> Any:
    """The light palette the style sheet's light backgrounds are drawn for.

    Why: with the desktop in dark mode (Windows 11, GNOME) Qt hands Fusion a dark palette, whose light text
    on the style sheet's light panels, tables and status bar cannot be read. Pinning the colour scheme
    keeps every colour the review depends on (amber uncertain calls, red failures) as designed.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QGuiApplication, QPalette

    hints = QGuiApplication.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: native dialogs and title bars follow too
        hints.setColorScheme(Qt.ColorScheme.Light)
    palette = QPalette(QColor("#efefef"))  # Qt derives the light, dark and disabled shades from the button colour
    for role, colour in (
        (QPalette.ColorRole.Base, "#ffffff"),
        (QPalette.ColorRole.AlternateBase, "#f7f7f7"),
        (QPalette.ColorRole.ToolTipBase, "#ffffdc"),
        (QPalette.ColorRole.ToolTipText, "#000000"),
        (QPalette.ColorRole.Highlight, "#308cc6"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
        (QPalette.ColorRole.PlaceholderText, "#6b7280"),
        (QPalette.ColorRole.Link, "#1f4f87"),
    ):
        palette.setColor(role, QColor(colour))
    return palette


def run_app(paths: list[str]) -> int:
    """Run the window until it is closed; ``paths`` (images or folders) are opened at start."""
    import onnxruntime  # noqa: F401 - import ORT before Qt: on Windows the other order can fail to load its DLLs
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from hemalens import __version__

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    QCoreApplication.setOrganizationName("HemaLens")
    QCoreApplication.setApplicationName("HemaLens")
    QCoreApplication.setApplicationVersion(__version__)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    icon = _app_icon()
    if icon is not None:
        app.setWindowIcon(QIcon(icon))
    window = MainWindow()
    window.show()
    window.start(list(paths))
    return int(app.exec())


def _app_icon() -> str | None:
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / "assets" / "icons"
    base = Path(getattr(sys, "_MEIPASS", "")) / "assets" / "icons" if getattr(sys, "_MEIPASS", None) else here
    for name in ("hemalens.svg", "hemalens.png", "hemalens-256.png"):
        if (base / name).is_file():
            return str(base / name)
    return None
