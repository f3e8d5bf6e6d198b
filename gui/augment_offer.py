"""The offer to make a custom model Grad-CAM-ready, and the worker thread that does it.

A model without Grad-CAM outputs gives a gradient-free CAM (or no heatmap at all), and a yes/no model
with one score per image cannot be loaded at all. The banner offers ``export.augment.augment_model``
(onnx + numpy only, no PyTorch or TensorFlow), which writes a verified copy with the Grad-CAM graph
(and two classes for a yes/no model) into the user's model folder under a new, unique name; the
original file is never written to. Augmenting verifies against finite differences and runs ONNX
Runtime a few times, so it runs on its own thread.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from gui.items import ModelInfo
from gui.job_thread import SingleJobThread
from gui.offer_strip import OfferStrip
from inference.contract import ONE_SCORE

GRAD_CAM = "grad-cam"  # inference.cam.GRAD_CAM; repeated so this module needs no ONNX Runtime import
SUFFIX = "-gradcam"


def wants_gradcam_offer(info: ModelInfo, bundled_dir: Path | None = None) -> bool:
    """True for a user's own model (not a bundled one) that has no Grad-CAM outputs."""
    if info.cam_method == GRAD_CAM:
        return False
    if bundled_dir is not None:
        try:
            Path(info.path).resolve().relative_to(Path(bundled_dir).resolve())
            return False
        except ValueError:
            pass
    return True


def is_one_score_refusal(message: str) -> bool:
    """True when a model was refused for giving one score per image, which a two-class copy mends."""
    return ONE_SCORE in message


def parse_two_labels(text: str) -> list[str] | None:
    """Two distinct class names from "other, blast" (a low score's class first); None otherwise."""
    names = [part.strip() for part in text.split(",")]
    if len(names) != 2 or not all(names) or names[0].casefold() == names[1].casefold():
        return None
    return names


def output_names(source: Path) -> Iterator[str]:
    """``<stem>-gradcam.onnx``, ``<stem>-gradcam-2.onnx``, ... (an augmented name gets no second suffix)."""
    stem = re.sub(r"(-gradcam(-\d+)?)+$", "", Path(source).stem) or "model"
    yield f"{stem}{SUFFIX}.onnx"
    for n in range(2, 1000):
        yield f"{stem}{SUFFIX}-{n}.onnx"


def publish_new_file(written: Path, folder: Path, source: Path) -> Path:
    """Give the finished file ``written`` the first free name from :func:`output_names` in ``folder``.

    A hard link is created only if the name is free (atomically), so an existing model - the
    original included - is never replaced, even by another HemaLens running at the same time.
    Where hard links are not supported, the file is renamed after checking the name is free.
    """
    for name in output_names(source):
        target = folder / name
        try:
            os.link(written, target)
        except FileExistsError:
            continue
        except OSError:
            if target.exists():
                continue
            os.replace(written, target)  # no hard links here (e.g. FAT): checked just before
            return target
        written.unlink(missing_ok=True)
        return target
    raise FileExistsError(f"no free file name for {next(output_names(source))} in {folder}")


@dataclass(frozen=True)
class AugmentOutcome:
    """The Grad-CAM-ready copy that was written and how it verified."""

    source: Path
    path: Path
    target: str
    figures: dict
    seconds: float
    labels: tuple[str, ...] = ()  # the two names given to a one-score model; empty for a Grad-CAM copy

    @property
    def what(self) -> str:
        return "two-class copy" if self.labels else "Grad-CAM-ready copy"


def augment_to_user_folder(source: Path, folder: Path, labels: list[str] | None = None) -> AugmentOutcome:
    """Write a verified Grad-CAM-ready copy of ``source`` into ``folder`` (any thread); ``labels`` names the
    classes (a one-score model's two).

    Raises HemaLensError (export.errors.ExportError and subclasses) with the reason it failed;
    then no file is left behind.
    """
    from export.augment import augment_model
    from export.errors import ExportError

    started = time.monotonic()
    source = Path(source)
    if not source.is_file():
        raise ExportError(f"the model file {source} is no longer there")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot write to the model folder {folder}: {exc.strerror or exc}") from None
    # Written under a hidden name the model list does not read (*.partial), then given its real name.
    partial = folder / f".{source.stem}.{os.getpid()}.{threading.get_ident()}.partial"
    try:
        report = augment_model(source, partial, labels=labels, log=None)
        out = publish_new_file(partial, folder, source)
    except OSError as exc:
        raise ExportError(f"cannot write to the model folder {folder}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return AugmentOutcome(source, out, report.target_tensor, dict(report.figures), time.monotonic() - started,
                          tuple(labels or ()))


def _import_augment() -> None:
    """Import export.augment on the worker while the offer is read: a first import on the click stalls the GUI."""
    import export.augment  # noqa: F401


class Augmenter(SingleJobThread):
    """Owns the augment thread; one model at a time. ``finished(AugmentOutcome)`` or ``failed(message)`` arrive
    on the GUI thread; ``source`` is the model file of the job started last."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("hemalens-augment", _import_augment, parent)
        self.source: Path | None = None

    def start(self, source: Path, folder: Path, labels: list[str] | None = None) -> bool:
        if self.busy:
            return False
        source, folder = Path(source), Path(folder)
        self.source = source
        return self._submit(lambda: augment_to_user_folder(source, folder, labels))


class AugmentOfferBar(OfferStrip):
    """A non-modal strip under the banners: what is missing, "Make Grad-CAM ready…" and "Not now"."""

    accepted = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("augmentOffer", "Make Grad-CAM ready…", parent)
        self.button.setToolTip(
            "Add Grad-CAM outputs to a copy of this model in your model folder; the original file is not changed"
        )
        self.done = False  # showing the result rather than the offer
        self.one_score: Path | None = None  # offering a two-class copy of this refused model
        self.button.clicked.connect(self.accepted)
        self.later.clicked.connect(self.dismissed)

    def offer(self, info: ModelInfo) -> None:
        how = "a gradient-free CAM" if info.cam_method else "no heatmap"
        self.text.setText(
            f"<b>{info.name}</b> has no Grad-CAM outputs, so its heatmaps come from {how}. HemaLens can add "
            "Grad-CAM to a verified copy saved in your model folder (the original file is not changed)."
        )
        self.one_score = None
        self._show_offer()

    def offer_two_classes(self, source: Path) -> None:
        """The model could not load because it gives one score per image: offer the two-class copy."""
        self.text.setText(
            f"Could not load <b>{html.escape(Path(source).name)}</b>: it gives one score per image (a yes/no model), "
            "and HemaLens needs one score per class. HemaLens can save a verified two-class copy in your model "
            "folder, with the two class names you give it (the original file is not changed)."
        )
        self.one_score = Path(source)
        self._show_offer()

    def _show_offer(self) -> None:
        self.done = False
        self.button.setVisible(True)
        self.later.setText("Not now")
        self.set_working(False)
        self.setVisible(True)

    def set_working(self, working: bool) -> None:
        self.button.setEnabled(not working)
        self.later.setEnabled(not working)
        if self.one_score is not None:
            self.button.setText("Making the copy…" if working else "Make a two-class copy…")
        else:
            self.button.setText("Adding Grad-CAM…" if working else "Make Grad-CAM ready…")

    def show_done(self, outcome: AugmentOutcome, in_use: bool) -> None:
        """Say where the copy went and how it verified, until dismissed or another model is loaded."""
        fd = outcome.figures.get("fd_max_rel_error")
        check = f"scores unchanged (max diff {outcome.figures.get('max_abs_score_diff', float('nan')):.1e})"
        if isinstance(fd, float):
            check += f", gradients match finite differences (rel. error {fd:.1e})"
        where = html.escape(str(outcome.path.parent))
        self.text.setText(
            f"✓ {outcome.what.capitalize()} saved as <b>{html.escape(outcome.path.name)}</b> in {where}: {check}. "
            + ("It is the model in use now; the original file is unchanged." if in_use
               else "Pick it in the model list to use it; the original file is unchanged.")
        )  # fmt: skip
        self.done = True
        self.one_score = None
        self.button.setVisible(False)
        self.later.setText("OK")
        self.later.setEnabled(True)
        self.setVisible(True)
