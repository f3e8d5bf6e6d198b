"""The model picker: bundled and user models from the registry, recently loaded files, "Load model…"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

LOAD_MORE = "__load__"


class ModelPicker(QComboBox):
    """A combo box of model files; emits ``modelChosen(Path)`` or ``loadRequested()``."""

    modelChosen = Signal(object)
    loadRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumContentsLength(22)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setToolTip("Model used to classify (switching reclassifies what is open)")
        # A click must not take the keyboard: Down, meant for the next image, moved the picker to the next model.
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self._problems: list[tuple[Path, str]] = []
        self.class_names: dict[str, str] = {}  # class id -> name over the listed models
        self.descriptions: dict[str, str] = {}  # listed model name -> what its card says it is for
        self._silent = False
        self.activated.connect(self._on_activated)

    def refresh(self, extra: list[Path] | None = None, current: Path | None = None) -> list[tuple[Path, str]]:
        """List the registry's models plus ``extra`` files; returns the files that could not be read."""
        from inference.registry import class_names, list_models

        self._problems = []
        entries = list_models(self._problems)
        self.class_names = class_names(entries)
        self.descriptions = {e.name: e.spec.description for e in entries}
        self._silent = True
        try:
            self.clear()
            seen: set[str] = set()
            for e in entries:
                tag = "" if e.bundled else "  (user)"
                self.addItem(f"{e.name}{tag}", str(e.path))
                tip = f"{e.spec.description}\n{e.path}" if e.spec.description else str(e.path)
                self.setItemData(self.count() - 1, tip, 3)  # tooltip role
                seen.add(str(Path(e.path).resolve()))
            for path in extra or []:
                if str(Path(path).resolve()) not in seen and Path(path).is_file():
                    self.addItem(f"{Path(path).stem}  (file)", str(path))
                    self.setItemData(self.count() - 1, str(path), 3)
                    seen.add(str(Path(path).resolve()))
            self.insertSeparator(self.count())
            self.addItem("Load model…", LOAD_MORE)
            self.select_path(current)
        finally:
            self._silent = False
        return self._problems

    def model_paths(self) -> list[Path]:
        return [Path(self.itemData(i)) for i in range(self.count()) if self.itemData(i) not in (None, LOAD_MORE)]

    def select_path(self, path: Path | None) -> None:
        if path is None:
            return
        target = str(Path(path).resolve())
        for i in range(self.count()):
            data = self.itemData(i)
            if data not in (None, LOAD_MORE) and str(Path(data).resolve()) == target:
                was, self._silent = self._silent, True
                self.setCurrentIndex(i)
                self._silent = was
                return
        was, self._silent = self._silent, True
        self.insertItem(max(0, self.count() - 2), f"{Path(path).stem}  (file)", str(path))
        self.setCurrentIndex(max(0, self.count() - 3))
        self._silent = was

    def _on_activated(self, index: int) -> None:
        if self._silent:
            return
        data = self.itemData(index)
        if data == LOAD_MORE:
            self.loadRequested.emit()
        elif data:
            self.modelChosen.emit(Path(data))
