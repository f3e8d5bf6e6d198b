"""The "Make Grad-CAM ready…" offer for custom models without Grad-CAM outputs (offscreen, real models):
the copy goes to the user's model folder under a new name, the original is untouched, and the app
switches to the copy; declining and failures behave."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from gui.augment_offer import (
    augment_to_user_folder,
    output_names,
    parse_two_labels,
    publish_new_file,
    wants_gradcam_offer,
)
from gui.items import ModelInfo
from gui.main_window import MainWindow
from gui.review_bridge import ReviewBridge
from gui.settings import AppSettings
from inference.errors import HemaLensError
from inference.images import load_image
from inference.session import ModelSession
from tests.model_factory import make_classifier, make_one_score_classifier

LABELS = ["Lymphocyte", "Monocyte", "Neutrophil"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, Path]:
    bundled = tmp_path / "bundled"
    make_classifier(bundled / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    user = tmp_path / "user-models"
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(bundled))
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(user))
    plain = make_classifier(tmp_path / "custom" / "plain.onnx", num_classes=3, size=32, labels=LABELS,
                            with_gradcam=False, seed=5)  # fmt: skip
    folder = tmp_path / "smear"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        cv2.imwrite(str(folder / f"cell_{i}.png"), (rng.uniform(0, 255, (40, 40, 3))).astype(np.uint8))
    return {"bundled": bundled / "tiny.onnx", "user": user, "plain": plain, "folder": folder, "tmp": tmp_path}


def _window(qtbot, tmp_path: Path) -> MainWindow:
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    return window


def _load(qtbot, window: MainWindow, path: Path) -> ModelInfo:
    with qtbot.waitSignal(window.modelReady, timeout=30000) as signal:
        window.load_model(path)
    return signal.args[0]


def test_offer_makes_a_gradcam_copy_in_the_user_folder_and_switches_to_it(qtbot, env) -> None:
    original_sha = _sha(env["plain"])
    window = _window(qtbot, env["tmp"])
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(env["folder"])])
    assert window.model_info.cam_method == "grad-cam"
    assert not window.augment_offer.isVisible()  # the bundled model has Grad-CAM: nothing to offer

    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        info = _load(qtbot, window, env["plain"])
    assert info.cam_method != "grad-cam"
    assert window.augment_offer.isVisible() and window.augment_offer.button.isEnabled()
    assert "no Grad-CAM outputs" in window.augment_offer.text.text()

    finished, ready_signal = window.augmentFinished, window.modelReady
    with qtbot.waitSignal(finished, timeout=60000) as done, qtbot.waitSignal(ready_signal, timeout=60000) as ready:
        qtbot.mouseClick(window.augment_offer.button, Qt.MouseButton.LeftButton)
        assert not window.augment_offer.button.isEnabled()  # working, off the GUI thread
    outcome = done.args[0]
    copy = env["user"] / "plain-gradcam.onnx"
    assert outcome.path == copy and copy.is_file()
    assert _sha(env["plain"]) == original_sha  # the original is never written to
    assert outcome.figures["top1_agreement"] == 1.0 and outcome.figures["max_abs_score_diff"] <= 1e-4
    loaded = ready.args[0]
    assert Path(loaded.path) == copy and loaded.cam_method == "grad-cam"
    assert window.model_info.path == copy
    assert copy in [Path(p) for p in window.picker.model_paths()]
    # The strip now says where the copy is and how it verified, until OK or another model.
    note = window.augment_offer.text.text()
    assert window.augment_offer.isVisible() and not window.augment_offer.button.isVisible()
    assert "plain-gradcam.onnx" in note and str(env["user"]) in note and "model in use now" in note

    # The copy classifies exactly like the original, and its Grad-CAM equals the original's CAM
    # (for a GAP -> linear head the two are proportional, so their normalised maps agree).
    image = load_image(env["folder"] / "cell_0.png").rgb
    before, after = ModelSession.load(env["plain"]).predict(image), ModelSession.load(copy).predict(image)
    np.testing.assert_allclose(after.probabilities, before.probabilities, atol=1e-5)
    for c in range(3):
        np.testing.assert_allclose(after.heatmap(c), before.heatmap(c), atol=1e-3)
    # The window shows a Grad-CAM heatmap for the open image now.
    bar = window.heatmap_bar
    qtbot.waitUntil(lambda: window.image_view.has_heatmap() and bar.full_caption().endswith("· Grad-CAM"), timeout=9000)
    qtbot.mouseClick(window.augment_offer.later, Qt.MouseButton.LeftButton)  # "OK"
    assert not window.augment_offer.isVisible()
    _load(qtbot, window, env["bundled"])
    _load(qtbot, window, copy)
    assert not window.augment_offer.isVisible()  # the copy has Grad-CAM: nothing more to say


def test_copies_get_unique_names_and_never_overwrite(env) -> None:
    user = env["user"]
    user.mkdir()
    squatter = user / "plain-gradcam.onnx"
    squatter.write_bytes(b"someone else's model")
    first = augment_to_user_folder(env["plain"], user)
    second = augment_to_user_folder(env["plain"], user)
    assert first.path.name == "plain-gradcam-2.onnx" and second.path.name == "plain-gradcam-3.onnx"
    assert squatter.read_bytes() == b"someone else's model"
    assert ModelSession.load(second.path).cam_method == "grad-cam"
    names = sorted(f.name for f in user.iterdir())
    assert names == ["plain-gradcam-2.onnx", "plain-gradcam-3.onnx", "plain-gradcam.onnx"]  # no partial files left
    # Re-augmenting an augmented model's file does not pile up suffixes.
    assert next(output_names(user / "plain-gradcam-3.onnx")) == "plain-gradcam.onnx"
    # A name taken between the check and the publish is skipped, never replaced.
    written = user / ".w.partial"
    written.write_bytes(b"new")
    (user / "plain-gradcam-4.onnx").write_bytes(b"taken")
    assert publish_new_file(written, user, env["plain"]).name == "plain-gradcam-5.onnx"
    assert (user / "plain-gradcam-4.onnx").read_bytes() == b"taken" and not written.exists()


def test_failure_leaves_nothing_behind_and_keeps_the_original_loaded(qtbot, env) -> None:
    env["user"].write_text("a file where the model folder should be")  # the folder cannot be created
    window = _window(qtbot, env["tmp"])
    window.start([])
    info = _load(qtbot, window, env["plain"])
    assert window.augment_offer.isVisible()
    with qtbot.waitSignal(window.augmentFailed, timeout=60000) as failed:
        assert window.make_gradcam_ready()
    assert "cannot write to the model folder" in failed.args[0]
    assert window.error_banner.isVisible() and "Could not make plain.onnx Grad-CAM ready" in window.error_banner.text()
    assert window.model_info.sha256 == info.sha256 and not window.augment_offer.isVisible()
    # Not offered again for the same model in this session.
    _load(qtbot, window, env["plain"])
    assert not window.augment_offer.isVisible()


def test_unsupported_graph_is_a_typed_error_and_no_file(env) -> None:
    user = env["user"]
    broken = env["tmp"] / "custom" / "not_a_model.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(HemaLensError):
        augment_to_user_folder(broken, user)
    assert list(user.iterdir()) == []  # no copy, no partial file


def test_not_now_hides_the_offer_for_that_model(qtbot, env) -> None:
    window = _window(qtbot, env["tmp"])
    window.start([])
    _load(qtbot, window, env["plain"])
    assert window.augment_offer.isVisible()
    qtbot.mouseClick(window.augment_offer.later, Qt.MouseButton.LeftButton)
    assert not window.augment_offer.isVisible()
    _load(qtbot, window, env["bundled"])
    assert not window.act_augment.isEnabled()  # a bundled model with Grad-CAM: nothing to do
    _load(qtbot, window, env["plain"])
    assert not window.augment_offer.isVisible()
    assert not env["user"].exists() or list(env["user"].glob("*.onnx")) == []
    # Changed their mind: Model -> Make Grad-CAM ready… still does it.
    assert window.act_augment.isEnabled()
    with qtbot.waitSignal(window.augmentFinished, timeout=60000), qtbot.waitSignal(window.modelReady, timeout=60000):
        window.act_augment.trigger()
        assert window.augment_offer.isVisible() and not window.act_augment.isEnabled()
    assert window.model_info.path == env["user"] / "plain-gradcam.onnx" and not window.act_augment.isEnabled()


def test_bundled_models_are_not_offered(env) -> None:
    spec = ModelSession.load(env["plain"]).spec
    in_bundle = ModelInfo(env["bundled"].parent / "x.onnx", spec, "0" * 64, "gradient-free CAM")
    custom = ModelInfo(env["plain"], spec, "1" * 64, None)
    assert not wants_gradcam_offer(in_bundle, env["bundled"].parent)
    assert wants_gradcam_offer(custom, env["bundled"].parent)
    assert not wants_gradcam_offer(ModelInfo(env["plain"], spec, "2" * 64, "grad-cam"), None)


def test_heatmap_caption_fits_narrow_strips_elided_or_on_its_own_line(qtbot) -> None:
    from PySide6.QtGui import QTextDocument

    from gui.heatmap_bar import HeatmapBar

    bar = HeatmapBar()
    qtbot.addWidget(bar)
    method = "gradient-free CAM (class activation map from the GAP → linear head, Zhou et al. 2016)"
    bar.set_caption(f"Heatmap for <b>Neutrophil &amp; band</b> · {method}")
    full = f"Heatmap for Neutrophil & band · {method}"
    bar.resize(1600, 40)
    bar.show()
    qtbot.waitExposed(bar)
    assert bar.full_caption() == full and bar.caption.toolTip() == full
    assert bar.arrangement() == (False, False)
    assert bar.caption.text() == f"Heatmap for <b>Neutrophil &amp; band</b> · {method}"

    def fits() -> bool:  # measured by Qt's own rich-text layout, independently of the label's code
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(bar.caption.font())
        doc.setHtml(bar.caption.text())
        return doc.idealWidth() <= bar.caption.contentsRect().width()

    # One row, the method elided: the class name stays readable, the rest ends in "…".
    bar.resize(900, 40)
    qtbot.waitUntil(lambda: bar.caption.text().endswith("…") and fits())
    assert bar.arrangement() == (False, False)
    assert bar.caption.text().startswith("Heatmap for <b>Neutrophil &amp; band</b> · gradient-free")
    # Narrower: the caption gets its own line above the controls (never squeezed to a few pixels).
    bar.resize(520, 80)
    qtbot.waitUntil(lambda: bar.arrangement()[1] and bar.caption.geometry().bottom() <= bar.toggle.geometry().top())
    qtbot.waitUntil(fits)
    assert bar.caption.width() >= 480 and "Neutrophil &amp; band" in bar.caption.text()
    # Narrower still: the "low/high/Opacity" words go too; the controls stay usable.
    bar.resize(330, 80)
    qtbot.waitUntil(lambda: bar.arrangement() == (True, True) and not bar.opacity_label.isVisible() and fits())
    assert bar.slider.isVisible() and bar.toggle.isVisible() and bar.caption.text().endswith("…")
    # And back: the whole caption on one line again.
    bar.resize(1600, 40)
    qtbot.waitUntil(lambda: bar.arrangement() == (False, False) and "Zhou et al. 2016)" in bar.caption.text())
    assert bar.opacity_label.isVisible()


def test_a_yes_no_model_is_offered_a_two_class_copy_that_loads_and_classifies(qtbot, env, monkeypatch) -> None:
    """A model with one score per image cannot load; the strip offers a verified two-class copy with names asked for."""
    yes_no = make_one_score_classifier(env["tmp"] / "custom" / "yesno.onnx")
    original_sha = _sha(yes_no)
    answers = iter([("blast", True), ("other, blast", True)])  # one name is not enough: asked again
    asked = []
    monkeypatch.setattr("gui.main_window.ask_text", lambda _w, _t, label, text="": asked.append(label) or next(answers))
    window = _window(qtbot, env["tmp"])
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(env["folder"])])
    with qtbot.waitSignal(window.engine.modelFailed, timeout=30000):
        window.load_model(yes_no)
    assert not window.error_banner.isVisible()  # the strip says why it did not load, and offers the way out
    assert window.model_info.path == env["bundled"]  # the model in use stays
    strip = window.augment_offer
    assert strip.isVisible() and "Could not load <b>yesno.onnx</b>" in strip.text.text()
    assert "one score per image" in strip.text.text() and "two-class copy" in strip.text.text()
    assert strip.button.text() == "Make a two-class copy…"

    with qtbot.waitSignal(window.augmentFinished, timeout=60000) as done, \
            qtbot.waitSignal(window.batchFinished, timeout=60000):
        qtbot.mouseClick(strip.button, Qt.MouseButton.LeftButton)
    assert len(asked) == 2 and asked[1].startswith("Two different names")
    copy = env["user"] / "yesno-gradcam.onnx"
    assert done.args[0].path == copy and done.args[0].labels == ("other", "blast")
    assert _sha(yes_no) == original_sha
    assert window.model_info.path == copy and tuple(window.model_info.labels) == ("other", "blast")
    assert window.model_info.cam_method == "grad-cam"
    assert "Two-class copy saved as" in strip.text.text() and "model in use now" in strip.text.text()
    banner = window.model_banner.text()  # the names were given: only the preprocessing is assumed
    assert "its preprocessing is assumed" in banner and "its two classes show 1 - p and p" in banner
    # Its calls are the yes/no model's own probability p as [1 - p, p].
    import onnxruntime as ort

    image = load_image(env["folder"] / "cell_0.png").rgb
    pred = ModelSession.load(copy).predict(image)
    x = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).transpose(2, 0, 1)[None] / 255
    p = float(ort.InferenceSession(str(yes_no)).run(None, {"x": x})[0][0, 0])
    np.testing.assert_allclose(pred.probabilities, [1 - p, p], atol=1e-4)
    assert list(window.model.labels) == ["other", "blast"]
    assert all(item.probabilities is not None and len(item.probabilities) == 2 for item in window.model.items())


def test_a_yes_no_model_offer_can_be_cancelled_or_declined(qtbot, env, monkeypatch) -> None:
    yes_no = make_one_score_classifier(env["tmp"] / "custom" / "yesno.onnx")
    monkeypatch.setattr("gui.main_window.ask_text", lambda *_a, **_k: ("", False))
    window = _window(qtbot, env["tmp"])
    window.start([])
    _load(qtbot, window, env["plain"])
    with qtbot.waitSignal(window.engine.modelFailed, timeout=30000):
        window.load_model(yes_no)
    strip = window.augment_offer
    assert strip.one_score == yes_no
    assert not window.make_two_class_copy(yes_no)  # Cancel on the names: nothing is made
    assert not window.augmenter.busy and not env["user"].exists()
    qtbot.mouseClick(strip.later, Qt.MouseButton.LeftButton)  # "Not now"
    assert not strip.isVisible()
    # Declining the yes/no copy is not declining the Grad-CAM offer of the model still in use.
    assert window.model_info.path == env["plain"] and window.act_augment.isEnabled()
    assert window.model_info.sha256 not in window._offer_declined


def test_a_failed_two_class_copy_says_so_and_keeps_the_model_in_use(qtbot, env) -> None:
    env["user"].write_text("a file where the model folder should be")  # the folder cannot be created
    yes_no = make_one_score_classifier(env["tmp"] / "custom" / "yesno.onnx")
    window = _window(qtbot, env["tmp"])
    window.start([])
    info = _load(qtbot, window, env["plain"])
    with qtbot.waitSignal(window.engine.modelFailed, timeout=30000):
        window.load_model(yes_no)
    with qtbot.waitSignal(window.augmentFailed, timeout=60000) as failed:
        assert window.make_two_class_copy(yes_no, ["other", "blast"])
    assert "cannot write to the model folder" in failed.args[0]
    assert "Could not make a two-class copy of yesno.onnx" in window.error_banner.text()
    assert window.model_info.sha256 == info.sha256
    # The Grad-CAM offer of the model in use comes back; the failure did not decline it.
    assert window.augment_offer.isVisible() and window.augment_offer.one_score is None
    assert "no Grad-CAM outputs" in window.augment_offer.text.text() and window.act_augment.isEnabled()


def test_two_class_names_are_two_different_names() -> None:
    assert parse_two_labels(" other ,blast") == ["other", "blast"]
    for text in ("blast", "a, b, c", "blast, Blast", ", blast", ""):
        assert parse_two_labels(text) is None
