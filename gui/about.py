"""The About box: versions of everything that computes a call, and the research-use statement."""

from __future__ import annotations

import html
import platform
from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from hemalens import RESEARCH_USE_STATEMENT, __version__


def versions() -> dict[str, str]:
    """Versions of HemaLens and the libraries behind a result (shown and useful in bug reports)."""
    import cv2
    import numpy
    import onnxruntime
    import PySide6
    from PySide6 import QtCore

    return {
        "HemaLens": __version__,
        "ONNX Runtime": onnxruntime.__version__,
        "PySide6 / Qt": f"{PySide6.__version__} / {QtCore.qVersion()}",
        "NumPy": numpy.__version__,
        "OpenCV": cv2.__version__,
        "Python": platform.python_version(),
        "System": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }


def about_html(review_db: Path | None = None) -> str:
    """Versions, and where this workstation keeps what matters (so IT can back it up and a user can find it)."""
    from inference.registry import user_models_dir

    facts = {**versions(), "Review records": str(review_db) if review_db else "not open",
             "Your models": str(user_models_dir())}
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;&nbsp;{html.escape(v)}</td></tr>" for k, v in facts.items())
    return (
        f"<h3>HemaLens {__version__}</h3><p>Local, explainable AI review of blood-smear images.</p>"
        f"<p><b>{RESEARCH_USE_STATEMENT}</b></p><table>{rows}</table>"
    )


def show_about(parent: QWidget | None, review_db: Path | None = None) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("About HemaLens")
    box.setTextFormat(box.textFormat().RichText)
    box.setText(about_html(review_db))
    box.exec()
