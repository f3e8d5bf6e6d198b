"""What the app remembers between runs (QSettings): model, overlay opacity, threshold, window
geometry and recent folders. Typed accessors so a corrupt or old value falls back to a default."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from gui.calls import DEFAULT_THRESHOLD
from inference.file_mode import odd_name_bytes

MAX_RECENT = 10
_BYTES_PREFIX = "fs-bytes:"  # cannot start an absolute path


def _to_setting(path: Path | str) -> str:
    """A path as QSettings keeps it. Qt strings cannot hold a name that is not valid UTF-8 (Python's lone
    surrogates): it came back without the odd byte and "Open recent" said the folder was not found. Such a
    path is kept as the hex of its bytes instead."""
    raw = odd_name_bytes(path)
    return str(path) if raw is None else _BYTES_PREFIX + raw.hex()


def _from_setting(value: object) -> str:
    text = str(value or "")
    if text.startswith(_BYTES_PREFIX):
        try:
            return os.fsdecode(bytes.fromhex(text[len(_BYTES_PREFIX):]))
        except ValueError:
            return ""
    return text


# The heatmap's colour maps (inference.overlay.COLORMAPS): the menu's words and the colour of most weight. Jet is the
# one Grad-CAM figures usually use; cividis reads the same for red-green colour-blind viewers (about 1 man in 12).
HEATMAP_COLOURS = {
    "jet": ("Blue to red (jet)", "red"),
    "cividis": ("Blue to yellow, for colour-blind viewers (cividis)", "yellow"),
}
DEFAULT_HEATMAP_COLOURS = "jet"


class AppSettings:
    def __init__(self, settings: QSettings | None = None) -> None:
        self.q = settings if settings is not None else QSettings("HemaLens", "HemaLens")

    def _float(self, key: str, default: float, lo: float, hi: float) -> float:
        try:
            value = float(self.q.value(key, default))
        except (TypeError, ValueError):
            return default
        return value if lo <= value <= hi else default

    # model
    def model_path(self) -> Path | None:
        value = _from_setting(self.q.value("model/path", ""))
        return Path(value) if value else None

    def set_model_path(self, path: Path) -> None:
        self.q.setValue("model/path", _to_setting(path))

    # overlay and threshold
    def opacity(self) -> float:
        return self._float("view/opacity", 0.45, 0.0, 1.0)

    def set_opacity(self, value: float) -> None:
        self.q.setValue("view/opacity", float(value))

    def heatmap_colours(self) -> str:
        value = str(self.q.value("view/heatmap_colours", DEFAULT_HEATMAP_COLOURS) or "")
        return value if value in HEATMAP_COLOURS else DEFAULT_HEATMAP_COLOURS

    def set_heatmap_colours(self, name: str) -> None:
        self.q.setValue("view/heatmap_colours", name)

    def heatmap_visible(self) -> bool:
        return str(self.q.value("view/heatmap", "true")).lower() in ("true", "1")

    def set_heatmap_visible(self, visible: bool) -> None:
        self.q.setValue("view/heatmap", bool(visible))

    def threshold(self) -> float:
        return self._float("review/threshold", DEFAULT_THRESHOLD, 0.0, 1.0)

    def set_threshold(self, value: float) -> None:
        self.q.setValue("review/threshold", float(value))

    def reviewer_name(self) -> str:
        return str(self.q.value("review/reviewer_name", "") or "")

    def set_reviewer_name(self, name: str) -> None:
        self.q.setValue("review/reviewer_name", name)

    def auto_advance(self) -> bool:
        return str(self.q.value("review/auto_advance", "true")).lower() in ("true", "1")

    def set_auto_advance(self, value: bool) -> None:
        self.q.setValue("review/auto_advance", bool(value))

    def gallery_thumb(self) -> int:
        """The gallery's thumbnail size in px (Small or Large)."""
        try:
            return int(self.q.value("review/gallery_thumb", 0) or 0)
        except (TypeError, ValueError):
            return 0

    def set_gallery_thumb(self, size: int) -> None:
        self.q.setValue("review/gallery_thumb", int(size))

    # reports
    def report_dir(self) -> Path | None:
        value = _from_setting(self.q.value("report/dir", ""))
        return Path(value) if value else None

    def set_report_dir(self, folder: Path) -> None:
        self.q.setValue("report/dir", _to_setting(folder))

    # window
    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def set_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    # recent
    def recent(self) -> list[str]:
        value = self.q.value("recent/paths", [])
        if isinstance(value, str):
            value = [value]
        return [p for p in (_from_setting(v) for v in (value or [])) if p][:MAX_RECENT]

    def add_recent(self, path: Path) -> list[str]:
        items = [str(path), *[p for p in self.recent() if p != str(path)]][:MAX_RECENT]
        self.q.setValue("recent/paths", [_to_setting(p) for p in items])
        return items

    def clear_recent(self) -> None:
        self.q.setValue("recent/paths", [])
