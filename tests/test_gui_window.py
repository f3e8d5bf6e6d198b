"""The real main window, offscreen, with tiny real ONNX models: batch, heatmaps, keyboard review,
cancellation, model switching, resume, failures, and the event loop staying responsive."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import helper
from PySide6.QtCore import QElapsedTimer, QEvent, QObject, QPoint, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel

import gui.batch_panel
import inference.images
from gui.batch_model import COL_AI, COL_CONF, COL_IMAGE, COL_REVIEWED, COL_STATUS
from gui.calls import UNIDENTIFIED_ID, format_percent
from gui.main_window import MainWindow
from gui.model_card import model_card_html, model_status_text
from gui.probability_panel import ROW_H
from gui.review_bridge import ReviewBridge
from gui.settings import AppSettings
from inference.file_mode import new_file_mode
from inference.images import load_image
from inference.session import ModelSession
from review.records import readable_time
from review.store import ReviewStore
from tests.model_factory import make_classifier

LABELS = ["Lymphocyte", "Monocyte", "Neutrophil"]


def _write_images(folder: Path, count: int, size: int = 48, seed: int = 1) -> list[Path]:
    """Tinted noise images, so the tiny model's calls differ between images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        tint = rng.uniform(0.2, 1.0, 3)
        img = (rng.uniform(0, 255, (size, size + i % 5, 3)) * tint).astype(np.uint8)
        path = folder / f"cell_{i:04d}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def _bundle(monkeypatch, tmp_path: Path, folder: Path) -> Path:
    """Make ``folder`` the app's bundled-models folder (and keep the user's own models out)."""
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(folder))
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "user-models"))
    return folder


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "models"
    make_classifier(folder / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    return _bundle(monkeypatch, tmp_path, folder)


def _make_window(qtbot, tmp_path: Path, size: tuple[int, int] = (1400, 900)) -> MainWindow:
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    return window


def _open(qtbot, window: MainWindow, paths: list[Path], timeout: int = 30000) -> None:
    with qtbot.waitSignal(window.batchFinished, timeout=timeout):
        window.start([str(p) for p in paths])


def _row_texts(window: MainWindow, row: int) -> list[str]:
    return [window.model.index(row, c).data() for c in range(window.model.columnCount())]



def _press(qtbot, window, widget, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A key as a technician presses it: once the current image is on screen (a class key is refused before)."""
    qtbot.waitUntil(window.image_shown, timeout=10000)
    qtbot.keyClick(widget, key, modifiers)


def _on_screen(qtbot, window, row: int | None = None) -> None:
    """Show ``row`` (default: stay) and wait until its image is on screen, as a technician looks before deciding."""
    if row is not None:
        window.set_current_row(row)
    qtbot.waitUntil(window.image_shown, timeout=10000)

def test_folder_batch_fills_the_table_with_the_cores_predictions(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    paths = _write_images(folder, 12)
    (folder / "zz_broken.png").write_bytes(b"this is not a PNG")
    (folder / "notes.txt").write_text("not an image, skipped quietly")
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])

    assert window.model.rowCount() == 13
    session = ModelSession.load(models / "tiny.onnx")
    for row, path in enumerate(paths):
        texts = _row_texts(window, row)
        expected = session.predict(load_image(path).rgb)
        assert texts[COL_IMAGE] == path.name
        assert texts[COL_STATUS].startswith("Done")
        assert texts[COL_CONF] == format_percent(expected.top_probability)
        if expected.top_probability >= 0.6:
            assert texts[COL_AI] == expected.top_label
        else:
            assert texts[COL_AI] == f"{expected.top_label}?"  # uncertain: best guess, counted as Unidentified
    broken = _row_texts(window, 12)
    assert broken[COL_IMAGE] == "zz_broken.png" and broken[COL_STATUS] == "Failed"
    assert "zz_broken.png" in window.model.index(12, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "1 could not be read" in window.status_label.text()
    # The differential counts every classified image once.
    summary = window.diff_panel.summary.text()
    assert summary.startswith("12 of 13 classified") and "1 failed" in summary
    # Sorting by confidence puts the most confident first.
    window.batch_panel.table.sortByColumn(COL_CONF, Qt.SortOrder.DescendingOrder)
    order = window.batch_panel.ordered_rows()
    confs = [
        float(np.max(window.model.item(r).probabilities))
        for r in order
        if window.model.item(r).probabilities is not None
    ]
    assert confs == sorted(confs, reverse=True)
    # Filtering by file name.
    window.batch_panel.filter_text.setText("broken")
    assert window.batch_panel.proxy.rowCount() == 1
    # The gallery groups the same rows by class, under the same filter.
    window.act_gallery.trigger()
    assert dict(window.gallery.sections())["__none__"] == 1 and sum(dict(window.gallery.sections()).values()) == 1
    assert window.gallery.ordered_rows() == [12]
    window.batch_panel.filter_text.setText("")
    sections = dict(window.gallery.sections())
    assert sum(sections.values()) == 13
    assert sections["__none__"] == 1  # the unreadable file has no call
    # Shares are of the 12 classified images, as in the differential; the failed file has none.
    headers = {sec.class_id: sec.header.text() for sec in window.gallery._sections}
    biggest = max(window.model.class_ids, key=lambda cid: sections[cid])
    assert headers[biggest].endswith(f"({100.0 * sections[biggest] / 12:.1f} %)")
    assert "%" not in headers["__none__"]
    calls = [window.model.ai_call_of(window.model.item(r)) for r in range(12)]
    for cid in window.model.class_ids:
        assert sections[cid] == calls.count(cid)


def test_heatmap_follows_the_class_clicked_in_the_probability_panel(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 3, size=64)
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.detailShown, timeout=30000):
        _open(qtbot, window, [folder])
    qtbot.waitUntil(lambda: window.heatmap_class() is not None, timeout=10000)
    top = int(np.argmax(window.model.item(0).probabilities))
    assert window.heatmap_class() == top
    assert window.image_view.has_image() and window.image_view.has_heatmap()
    first = window.image_view._overlay_item.pixmap().toImage()

    chart = window.prob_panel.chart
    spoken = chart.accessibleDescription()  # the painted chart, in words for a screen reader, highest first
    assert spoken.startswith(f"{LABELS[top]} {format_percent(float(window.model.item(0).probabilities[top]))}")
    assert spoken.count("%") == 3
    position = chart.order().index((top + 1) % 3)
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=QPoint(40, 2 + position * ROW_H + ROW_H // 2))
    qtbot.waitUntil(lambda: window.heatmap_class() == (top + 1) % 3, timeout=10000)
    other = (top + 1) % 3  # the caption gives that class's own probability: it is not the call
    shown = f"{LABELS[other]} ({format_percent(float(window.model.item(0).probabilities[other]))})"
    assert shown in window.heatmap_bar.caption.plain_text()
    assert window.image_view._overlay_item.pixmap().toImage() != first

    window.act_heatmap.trigger()  # the H key's action hides the overlay, and shows it again
    assert not window.image_view._overlay_item.isVisible()
    window.act_heatmap.trigger()
    assert window.image_view._overlay_item.isVisible()
    window.heatmap_bar.slider.setValue(80)
    assert window.image_view._overlay_item.opacity() == pytest.approx(0.8)
    window.prob_panel.set_threshold(1.0)  # every call is now under the threshold: the call's heatmap says so
    window.show_heatmap_class(top)
    qtbot.waitUntil(lambda: ", uncertain)" in window.heatmap_bar.caption.plain_text(), timeout=10000)


def test_heatmap_caption_says_which_edges_a_centre_crop_model_did_not_see(qtbot, tmp_path, monkeypatch) -> None:
    folder = _bundle(monkeypatch, tmp_path, tmp_path / "models")
    make_classifier(folder / "crop.onnx", num_classes=3, size=32, labels=LABELS, resize="center_crop")
    images = tmp_path / "fields"
    images.mkdir()
    rng = np.random.default_rng(4)
    cv2.imwrite(str(images / "a_wide.png"), rng.integers(0, 255, (40, 90, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "b_square.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.detailShown, timeout=30000):
        _open(qtbot, window, [images])
    bar = window.heatmap_bar
    qtbot.waitUntil(lambda: window.image_view.has_heatmap(), timeout=10000)
    # The wide field (90 x 40 px) keeps its centre 40 px: about 25 px lost on each side.
    assert bar.full_caption().endswith("· not seen: left and right 49 of 90 px")
    window.step(1)  # the square image: nothing left out
    qtbot.waitUntil(lambda: bar.full_caption().endswith("· Grad-CAM"), timeout=10000)


def test_keyboard_review_is_recorded_in_the_store_and_the_differential(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 6)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    table = window.batch_panel.table
    table.setFocus()
    assert window.current_row() == 0

    _press(qtbot, window, table, Qt.Key.Key_2)  # reassign to class 2 (Monocyte), then advance
    assert window.model.item(0).reviewed_id == window.model.class_ids[1]
    assert window.current_row() == 1
    ai_call = window.model.ai_call_of(window.model.item(1))
    _press(qtbot, window, table, Qt.Key.Key_Return)  # confirm the AI call
    assert window.model.item(1).reviewed_id == ai_call
    assert window.current_row() == 2
    _press(qtbot, window, table, Qt.Key.Key_0)  # Unidentified
    assert window.model.item(2).reviewed_id == UNIDENTIFIED_ID
    _press(qtbot, window, table, Qt.Key.Key_F)  # flag row 3, no advance
    assert window.model.item(3).flagged and window.current_row() == 3
    _press(qtbot, window, table, Qt.Key.Key_PageUp)
    assert window.current_row() == 2
    _press(qtbot, window, table, Qt.Key.Key_Down)
    assert window.current_row() == 3
    _press(qtbot, window, table, Qt.Key.Key_9)  # no class 9 in a 3-class model: refused, nothing recorded
    assert window.model.item(3).reviewed_id is None and "3 classes" in window.status_label.text()
    shortcuts = dict(window.shortcut_rows())  # F1 lists the keys that do something with this model
    assert shortcuts["3: Neutrophil"] == "3" and "Class 4" not in shortcuts and "Save image with heatmap…" in shortcuts
    menu = [a.text() for a in window.review_menu.actions()]
    assert "1: Lymphocyte" in menu and "3: Neutrophil" in menu and not any(t.startswith("Class ") for t in menu)
    assert menu.index("3: Neutrophil") + 1 == menu.index("Unidentified")

    assert window.model.index(0, COL_REVIEWED).data().endswith("Monocyte")
    window._update_differential()
    assert window.diff_panel.summary.text().startswith("6 of 6 classified · 3 reviewed · 1 flagged")
    mono_ai, mono_after = window.diff_panel.row_values("Monocyte")
    assert mono_after >= 1
    # Unreviewed images still count under their AI call there, so the column must not say "Reviewed".
    after = window.diff_panel.table.horizontalHeaderItem(3)
    assert after.text() == "After review" and "otherwise still the AI call" in after.toolTip()

    # Every decision is in the store, keyed by content hash, by this user.
    store = ReviewStore.open(tmp_path / "reviews.sqlite3")
    case = store.open_case(folder.resolve())
    states = case.current_state()
    by_path = {Path(s.last_path).name: s for s in states.values()}
    assert by_path["cell_0000.png"].reviewed_id == window.model.class_ids[1]
    assert by_path["cell_0001.png"].reviewed_id == ai_call
    assert by_path["cell_0002.png"].reviewed_id == UNIDENTIFIED_ID
    assert by_path["cell_0003.png"].flagged and by_path["cell_0003.png"].reviewed_id is None
    store.close()


def test_reopening_the_folder_restores_decisions_and_reuses_predictions(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 4)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.batch_panel.table.setFocus()
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_3)
    first_probs = window.model.item(0).probabilities.copy()
    window.close()

    again = _make_window(qtbot, tmp_path)
    cached: list[bool] = []
    again.engine.results.connect(lambda results: cached.extend(r.cached for r in results))
    _open(qtbot, again, [folder])
    assert again.model.item(0).reviewed_id == again.model.class_ids[2]
    assert again.model.index(0, COL_REVIEWED).data().endswith("Neutrophil")
    assert cached and all(cached)  # same model file, same images: nothing re-run
    np.testing.assert_allclose(again.model.item(0).probabilities, first_probs, rtol=1e-6)
    again.close()

    # A call stored by an earlier loader, which scaled a 12-bit camera's 16-bit file from 65535 (near black), is
    # not reused: its note says so, and the image is classified again from the pixels decoded now.
    store = ReviewStore.open(tmp_path / "reviews.sqlite3")
    case = store.open_case(folder)
    item0 = again.model.item(0)
    stored = case.cached_prediction(item0.image_hash, again.model_info.sha256)
    case.record_prediction(folder / item0.path.name, item0.image_hash, model_name=again.model_info.name,
                           model_version=again.model_info.version, model_sha256=again.model_info.sha256,
                           predicted_id=max(stored.probabilities, key=stored.probabilities.get),
                           probabilities=stored.probabilities, notes=("16-bit image scaled to 8-bit",))
    store.close()
    third = _make_window(qtbot, tmp_path)
    cached.clear()
    third.engine.results.connect(lambda results: cached.extend((r.path.name, r.cached) for r in results))
    _open(qtbot, third, [folder])
    assert dict(cached) == {"cell_0000.png": False, "cell_0001.png": True, "cell_0002.png": True,
                            "cell_0003.png": True}
    assert third.model.item(0).notes == ()  # what this loader says of the file (an 8-bit PNG: nothing)


def test_a_resumed_case_keeps_the_notes_shown_with_each_call(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    cv2.imwrite(str(folder / "dark.png"), np.full((48, 48, 3), 4, dtype=np.uint8))  # a quality note
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    rows = {window.model.item(r).path.name: r for r in range(window.model.rowCount())}
    first = window.model.item(rows["dark.png"]).notes
    assert any("very dark" in n for n in first)
    window.close()

    again = _make_window(qtbot, tmp_path)
    cached: list[bool] = []
    again.engine.results.connect(lambda results: cached.extend(r.cached for r in results))
    _open(qtbot, again, [folder])
    assert cached and all(cached)
    rows = {again.model.item(r).path.name: r for r in range(again.model.rowCount())}
    assert again.model.item(rows["dark.png"]).notes == first
    assert again.model.index(rows["dark.png"], COL_STATUS).data() == "⚠ Note"
    assert not again.model.item(rows["cell_0000.png"]).notes


def test_cancel_stops_a_running_batch_between_images(qtbot, tmp_path, models, monkeypatch) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 200, size=32)
    original = inference.images.load_image

    def slow_load(path, **kwargs):
        time.sleep(0.02)
        return original(path, **kwargs)

    monkeypatch.setattr(inference.images, "load_image", slow_load)
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.engine.results, timeout=30000):
        window.start([str(folder)])
    assert window.progress.isVisible() and window.cancel_button.isVisible()
    started = time.monotonic()
    with qtbot.waitSignal(window.batchFinished, timeout=5000) as blocker:
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [True]
    assert time.monotonic() - started < 2.0
    statuses = [window.model.item(r).status for r in range(window.model.rowCount())]
    assert 0 < statuses.count("Done") < 200
    assert statuses.count("Not classified") == 200 - statuses.count("Done")
    assert window.status_label.text().startswith("Cancelled")
    assert not window.progress.isVisible()
    # The worker really stopped: no more rows get classified afterwards.
    done = statuses.count("Done")
    qtbot.wait(300)
    assert sum(1 for i in window.model.items() if i.probabilities is not None) == done


def test_switching_model_reclassifies_and_keeps_reviews(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 5)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.batch_panel.table.setFocus()
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_1)
    reviewed = window.model.item(0).reviewed_id
    assert reviewed == window.model.class_ids[0]
    labels4 = ["Blast", "Promyelocyte", "Myelocyte", "Band"]
    other = make_classifier(tmp_path / "other.onnx", num_classes=4, size=24, labels=labels4, seed=3)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.load_model(other)
    assert window.model.labels == tuple(labels4)
    assert all(len(i.probabilities) == 4 for i in window.model.items())
    calls = {window.model.index(r, COL_AI).data() for r in range(5)}
    assert calls <= {*labels4, *(f"{lab}?" for lab in labels4)}
    assert window.model.item(0).reviewed_id == reviewed  # the technician's decision outlives the model
    assert window.model_info.path == other
    assert window.settings.model_path() == other
    assert "off: this model carries no statistics" in model_card_html(window.model_info)
    assert "Blast" in model_card_html(window.model_info) and window.model_info.sha256 in model_card_html(
        window.model_info
    )


def test_a_model_without_metadata_shows_the_assumed_banner(qtbot, tmp_path, models) -> None:
    plain = make_classifier(tmp_path / "plain.onnx", with_metadata=False, with_gradcam=False)
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.modelReady, timeout=30000):
        window.load_model(plain)
    assert window.model_banner.isVisible()
    assert "no HemaLens metadata: its preprocessing and class names are assumed" in window.model_banner.text()
    assert "assumed" in model_card_html(window.model_info)
    assert "accuracy not stated" in window.model_label.plain_text()
    assert window.research_label.isVisible() and "Research use only" in window.research_label.text()
    assert window.model_label.toolTip().startswith(window.model_label.plain_text())  # the whole line, on hover
    # On a narrow window a long model line gives way; "research use only" stays whole.
    window.model_label.set_caption("A long name " * 30 + "· measured accuracy 99.0 %", essential="A long name")
    window.resize(window.minimumWidth(), 700)
    qtbot.wait(100)
    assert window.research_label.width() >= window.research_label.sizeHint().width()
    assert window.model_label.width() < window.model_label.sizeHint().width()
    assert window.model_label.text().endswith("…")


def test_status_bar_shows_the_models_measured_accuracy(tmp_path) -> None:
    from dataclasses import replace

    from inference.session import ModelSession

    spec = ModelSession.load(make_classifier(tmp_path / "m.onnx")).spec
    measured = spec.with_provenance(metrics={"accuracy": 0.9439, "n": 410})
    assert model_status_text(measured).endswith("measured accuracy 94.4 % (410 test images)")
    assert "accuracy not stated" in model_status_text(replace(measured, provenance=spec.provenance))


def test_a_broken_model_file_is_reported_without_a_dialog(qtbot, tmp_path, models) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.modelReady, timeout=30000):
        window.start([])
    window.load_model(bad)
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=10000)
    assert "bad.onnx" in window.error_banner.text()
    assert window.model_info.path.name == "tiny.onnx"  # the working model stays in use
    assert QApplication.activeModalWidget() is None


def test_when_the_store_cannot_save_decisions_are_refused_visibly(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.review._store._conn.close()  # the database goes away under the app (disk, lock, ...)
    window.batch_panel.table.setFocus()
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_1)
    assert window.model.item(0).reviewed_id is None  # not shown as done when it was not saved
    assert window.review_banner.isVisible() and "not recorded" in window.review_banner.text()
    assert window.current_row() == 0
    assert QApplication.activeModalWidget() is None


def test_event_loop_keeps_running_while_200_images_classify(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 200, size=160)
    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.modelReady, timeout=30000):
        window.start([])
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    started = time.monotonic()
    with qtbot.waitSignal(window.batchFinished, timeout=120000):
        window.open_paths([folder])
    elapsed = time.monotonic() - started
    timer.stop()
    gaps = gaps[1:]
    worst = max(gaps)
    p99 = float(np.percentile(gaps, 99))
    print(
        f"\n200 images classified in {elapsed:.2f} s; event-loop stall: longest {worst:.1f} ms, "
        f"p99 {p99:.1f} ms over {len(gaps)} ticks (5 ms timer)"
    )
    assert sum(1 for i in window.model.items() if i.probabilities is not None) == 200
    assert worst < 1000.0  # generous: the point is that the loop never blocks on inference


def test_model_card_renders_measured_figures_as_tables() -> None:
    from gui.model_card import metrics_sections

    main, further = metrics_sections({
        "accuracy": 0.5, "n": 10, "confusion_matrix": [[3, 1], [2, 4]],
        "per_class": {"A": {"precision": 0.6, "recall": 0.75, "f1": 0.667, "support": 4}},
        "other_lab": {"accuracy": 0.9, "n": 20, "classes": ["B"], "source": "Lab X", "calls": {"A": 2, "B": 18}},
        "latency_ms_2_threads": {"predict_ms": 4.15, "scores_ms": 2.9},
        "my_own_figure": 0.25}, ["A", "B"])
    assert main.startswith("On 10 test images: accuracy <b>50.0 %</b>.")  # the headline first, in words
    assert "On another lab's images (B): <b>90.0 %</b> of 20 called right (other calls: A 2). Lab X" in main
    assert "Speed: 4.2 ms per image on 2 CPU threads" in main and "scores alone: 2.9 ms" in main
    assert main.index("Per class") < main.index("Confusion matrix")
    assert "my own figure: 0.250 (25.0 %)" in further  # a user model's own figures still show, further down
    assert "<td style='padding:1px 8px 1px 0'>4</td>" in main and "<b>B</b>" in main
    assert "0.750 (75.0 %)" in main
    assert metrics_sections({}, ["A"]) == ("<i>not stated</i>", "")


def test_stepping_past_the_last_visible_row_repaints_one_row_not_the_whole_table(qtbot, tmp_path, models) -> None:
    """The table's viewport must stay opaque (gui/table_look.py): a style-sheet rule on QTableView made
    every step past the bottom repaint all visible rows, 20-35 ms of GUI time per step."""
    from gui.app import configure_application

    folder = tmp_path / "smear"
    _write_images(folder, 60, size=32)
    app = QApplication.instance()
    configure_application(app)  # the app's style sheet, as gui.app.run_app sets it
    window = _make_window(qtbot, tmp_path)
    try:
        _open(qtbot, window, [folder])
        _check_one_row_scroll(qtbot, window)
    finally:
        app.setStyleSheet("")


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two QColors (1: none, 21: black on white)."""
    def lum(c):
        ch = [v / 255 for v in (c.red(), c.green(), c.blue())]
        ch = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_desktop_in_dark_mode_does_not_make_the_text_unreadable(qtbot, tmp_path) -> None:
    """Dark mode hands Qt a dark palette (light text); the style sheet's panels, tables and status bar are
    light, so the app pins its light palette: text must stand out from those backgrounds (WCAG AA: 4.5)."""
    from PySide6.QtGui import QColor, QPalette

    from gui.app import configure_application
    from gui.table_look import BASE

    app = QApplication.instance()
    saved = app.palette()
    app.setPalette(QPalette(QColor("#202124")))  # what a dark desktop gives: light text, dark buttons
    assert _contrast(app.palette().color(QPalette.ColorRole.WindowText), QColor("#f6f7f9")) < 2
    try:
        configure_application(app)
        palette = app.palette()
        for role, background in (
            (QPalette.ColorRole.WindowText, "#f6f7f9"),  # main window and side panel
            (QPalette.ColorRole.WindowText, "#eef1f5"),  # status bar
            (QPalette.ColorRole.Text, BASE),  # table rows
            (QPalette.ColorRole.ButtonText, palette.color(QPalette.ColorRole.Button).name()),
        ):
            assert _contrast(palette.color(role), QColor(background)) >= 4.5, role
        window = _make_window(qtbot, tmp_path)
        label = window.status_label.palette().color(QPalette.ColorRole.WindowText)
        assert _contrast(label, QColor("#eef1f5")) >= 4.5
    finally:
        app.setStyleSheet("")
        app.setPalette(saved)


def _check_one_row_scroll(qtbot, window: MainWindow) -> None:
    table = window.batch_panel.table
    viewport = table.viewport()
    visible_rows = viewport.height() // table.rowHeight(0)
    assert 3 < visible_rows < 40
    window.set_current_row(0)
    for _ in range(visible_rows + 2):  # to the bottom edge and one row past it
        window.step(1)
        QApplication.processEvents()

    painted: list[int] = []

    class PaintSpy(QObject):
        def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                painted.append(event.region().boundingRect().height())
            return False

    spy = PaintSpy()
    viewport.installEventFilter(spy)
    before = table.verticalScrollBar().value()
    window.step(1)
    qtbot.waitUntil(lambda: bool(painted))
    QApplication.processEvents()
    viewport.removeEventFilter(spy)
    assert table.verticalScrollBar().value() == before + 1  # the table did scroll by a row
    assert max(painted) <= 3 * table.rowHeight(0) < viewport.height() // 2


def test_stepping_follows_the_sorted_table_order(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 8)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.batch_panel.table.sortByColumn(COL_CONF, Qt.SortOrder.DescendingOrder)
    order = window.batch_panel.ordered_rows()
    assert sorted(order) == list(range(8)) and order != list(range(8))
    window.set_current_row(order[0])
    visited = [order[0]]
    for _ in range(7):
        window.step(+1)
        visited.append(window.current_row())
    assert visited == order
    window.step(+1)
    assert window.current_row() == order[-1] and "Last image" in window.status_label.text()
    window.step(-3)
    assert window.current_row() == order[-4]


def test_first_start_window_fits_the_screen(qtbot, tmp_path, models) -> None:
    """No saved geometry: the window opens inside the screen's free area (status bar and right panel visible)."""
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))
    qtbot.addWidget(window)
    room = window.screen().availableGeometry().size()
    assert 0 < window.width() <= room.width()
    assert 0 < window.height() <= room.height()
    # Nothing holds it wider than 1280 px (a 1920 x 1080 screen at 150 %, a 1366 px laptop): the heatmap bar's
    # minimum before its first resize and the gallery's longest choice made it 1391 px, past the screen's edge.
    assert window.minimumSizeHint().width() <= 1280
    window.show()
    qtbot.waitExposed(window)
    assert window.minimumSizeHint().width() <= 1280


def test_pane_widths_give_a_narrow_screen_table_room_for_every_column() -> None:
    from gui.window_parts import IMAGE_MIN_WIDTH, SIDE_MIN_WIDTH, pane_widths

    assert pane_widths(1600, 600) == [608, 640, 352]  # wide: the 38/40/22 % split
    table, image, side = pane_widths(1366, 640)
    assert (table, side) == (640, SIDE_MIN_WIDTH) and image == 1366 - 640 - SIDE_MIN_WIDTH
    table, image, side = pane_widths(1024, 640)  # too narrow for all: the image pane keeps its minimum
    assert image == IMAGE_MIN_WIDTH and table + image + side == 1024


def test_on_a_1366x768_screen_eight_classes_neither_overlap_nor_hide_the_review_columns(
    qtbot, tmp_path, monkeypatch
) -> None:
    """Laptop-sized window: the Reviewed and Flag columns show without sideways scrolling, and the side
    panel (eight class rows, threshold, differential) scrolls instead of squeezing its rows together."""
    folder = tmp_path / "models"
    labels = [f"Cell type {i}" for i in range(8)]
    make_classifier(folder / "eight.onnx", num_classes=8, size=32, labels=labels)
    _bundle(monkeypatch, tmp_path, folder)
    window = _make_window(qtbot, tmp_path, (1366, 700))
    _open(qtbot, window, _write_images(tmp_path / "smear", 12))
    qtbot.waitUntil(lambda: window.prob_panel.isVisible() and window.splitter.sizes()[0] > 0)
    QApplication.processEvents()

    table = window.batch_panel.table
    header = table.horizontalHeader()
    right_edge = max(header.sectionViewportPosition(c) + header.sectionSize(c) for c in range(header.count()))
    assert right_edge <= table.viewport().width(), "the last columns need sideways scrolling"
    assert table.horizontalScrollBar().maximum() == 0
    side = window.side_scroll.widget()
    assert side.height() >= side.minimumSizeHint().height(), "the side panel's rows are squeezed together"
    assert window.side_scroll.verticalScrollBar().maximum() > 0  # it scrolls instead


def test_a_folder_unlike_the_models_training_images_gets_a_warning(qtbot, tmp_path, monkeypatch) -> None:
    from export.reference import write_reference
    from inference.familiarity import UNFAMILIAR_NOTE, features_of_images, fit_reference
    from tests.test_familiarity import smear

    rng = np.random.default_rng(7)
    folder = tmp_path / "models"
    path = make_classifier(folder / "ref.onnx", num_classes=3, size=32, labels=LABELS)
    spec = ModelSession.load(path).spec
    train = [smear(rng) for _ in range(300)]
    write_reference(path, fit_reference(features_of_images(train, spec.input), np.arange(300) % 3, 3))
    _bundle(monkeypatch, tmp_path, folder)
    window = _make_window(qtbot, tmp_path)

    def write(name: str, tint: tuple[float, float, float]) -> Path:
        (tmp_path / name).mkdir()
        for i in range(8):
            cv2.imwrite(str(tmp_path / name / f"c{i}.png"), smear(rng, tint=tint)[:, :, ::-1])
        return tmp_path / name

    _open(qtbot, window, [write("same_lab", (1.0, 1.0, 1.0))])
    assert window.domain_banner.isHidden()
    window.batch_panel.show_combo.setCurrentText("With notes")
    with_notes = sum(bool(item.notes) for item in window.model.items())
    assert window.batch_panel.proxy.rowCount() == with_notes < 8
    window.batch_panel.show_combo.setCurrentText("All images")
    assert "on: an image farther from the called class than 99.5%" in model_card_html(window.model_info)
    _open(qtbot, window, [write("other_lab", (1.2, 1.0, 0.8))])
    assert window.domain_banner.isVisible()
    assert "8 of 8 images look unlike" in window.domain_banner.text()
    assert all(UNFAMILIAR_NOTE in item.notes for item in window.model.items())
    assert window.model.index(0, COL_STATUS).data() == "⚠ Note"


def test_a_folder_that_fits_another_model_gets_the_offer_to_switch_and_not_now_is_remembered(
    qtbot, tmp_path, monkeypatch
) -> None:
    """Blood-cell crops opened with the ALL subtypes model (the first in the list): the warning comes with
    "Use Blood cell types", which reclassifies with that model; "Not now" is not asked again for the pair."""
    import shutil

    from tests.test_model_fit import DATA

    if not (DATA / "pbc").is_dir():
        pytest.skip(f"real data not present at {DATA / 'pbc'} (see shared/data/README.md)")
    bundled = Path(__file__).resolve().parents[1] / "assets" / "models"
    _bundle(monkeypatch, tmp_path, bundled)
    folder = tmp_path / "cells"
    folder.mkdir()
    for cls in ("basophil", "lymphocyte", "monocyte", "neutrophil"):
        for path in sorted((DATA / "pbc" / cls).glob("*.jpg"))[:3]:
            shutil.copy(path, folder / f"{cls}_{path.name}")
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    assert window.model_info.path.name == "hemalens-all4.onnx"
    assert "12 of 12 images look unlike" in window.domain_banner.text()
    qtbot.waitUntil(lambda: window.model_offer.isVisible(), timeout=20000)
    offer = window.model_offer
    assert offer.suggested.name == "hemalens-pbc.onnx" and offer.button.text() == "Use Blood cell types"
    assert "12 of 12 sampled" in offer.text.text() and "only: Basophil, Eosinophil, Erythroblast" in offer.text.text()

    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        offer.button.click()
    assert window.model_info.path.name == "hemalens-pbc.onnx"
    assert window.picker.currentText() == "Blood cell types"
    assert offer.isHidden() and window.domain_banner.isHidden()
    assert all(len(item.probabilities) == 8 for item in window.model.items())  # the blood-cell model's calls
    assert window.model.index(0, COL_AI).data() == "Basophil"

    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.load_model(bundled / "hemalens-all4.onnx")
    qtbot.waitUntil(lambda: window.model_offer.isVisible(), timeout=20000)
    offer.later.click()
    assert offer.isHidden()
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.load_model(bundled / "hemalens-all4.onnx")  # the same folder and model again
    qtbot.wait(1500)
    assert window.domain_banner.isVisible() and offer.isHidden()


def test_a_missing_path_and_an_empty_folder_are_said_plainly(qtbot, tmp_path, models) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [empty, tmp_path / "unplugged share"])
    # The missing path stays in view (a banner), not in a status line the batch overwrites at once.
    assert window.error_banner.text().startswith("Not found: ") and "unplugged share" in window.error_banner.text()
    assert window.status_label.text().startswith("No images found in what was opened")
    assert not window.prob_panel.review.isVisible() and not window.prob_panel.hint.isVisible()
    # The next open without missing paths clears it.
    folder = tmp_path / "smear"
    _write_images(folder, 2)
    _open(qtbot, window, [folder])
    assert window.error_banner.text() == ""


def test_the_image_on_screen_is_saved_and_copied_with_its_heatmap_and_a_caption(qtbot, tmp_path, models) -> None:
    from PySide6.QtGui import QGuiApplication, QImage

    folder = tmp_path / "smear"
    _write_images(folder, 2, size=64)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.set_current_row(0)
    qtbot.waitUntil(lambda: window.image_view.has_heatmap(), timeout=10000)
    raw = window.image_view._image_item.pixmap().toImage()

    out = tmp_path / "export" / "cell"  # no suffix: .png is added
    out.parent.mkdir()
    assert window.save_view_image(out)
    saved = QImage(str(out.with_suffix(".png")))
    assert saved.width() == raw.width() and saved.height() > raw.height()  # the caption strip below the pixels
    top = saved.copy(0, 0, raw.width(), raw.height()).convertToFormat(QImage.Format.Format_RGB32)
    assert top != raw.convertToFormat(QImage.Format.Format_RGB32)  # the heatmap is in the picture
    window.act_heatmap.trigger()  # heatmap off: the picture is the plain image
    assert window.view_image().copy(0, 0, raw.width(), raw.height()) == raw.convertToFormat(QImage.Format.Format_RGB32)
    assert not list(out.parent.glob(".*.tmp"))  # written under a temporary name, then moved

    window.copy_view_image()
    assert QGuiApplication.clipboard().image().size() == window.view_image().size()

    # An unwritable destination is said, not raised.
    (tmp_path / "a file").write_text("not a folder")
    assert not window.save_view_image(tmp_path / "a file" / "x.png")
    assert window.error_banner.text().startswith("The image was not saved. Cannot write the image")
    assert oct(out.with_suffix(".png").stat().st_mode & 0o777) == oct(new_file_mode())  # not owner-only


def test_a_slipped_key_is_undone_and_redone_and_the_audit_trail_keeps_all_of_it(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 4)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    table = window.batch_panel.table
    table.setFocus()
    ids = window.model.class_ids
    assert not window.act_undo.isEnabled() and not window.act_redo.isEnabled()

    _press(qtbot, window, table, Qt.Key.Key_1)  # row 0 -> class 1, advance
    _press(qtbot, window, table, Qt.Key.Key_3)  # row 1 -> class 3: the slip, advance to row 2
    assert window.current_row() == 2 and window.model.item(1).reviewed_id == ids[2]
    _press(qtbot, window, table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.current_row() == 1  # back on the image whose decision was undone
    assert window.model.item(1).reviewed_id is None
    assert window.model.item(0).reviewed_id == ids[0]  # the one before is untouched
    assert "Undone" in window.status_label.text() and window.act_redo.isEnabled()
    _press(qtbot, window, table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.model.item(1).reviewed_id == ids[2]
    window.batch_panel.filter_text.setFocus()  # in the filter box Ctrl+Z undoes typing, not a decision
    qtbot.keyClicks(window.batch_panel.filter_text, "cell")
    qtbot.keyClick(window.batch_panel.filter_text, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.batch_panel.filter_text.text() == "" and window.model.item(1).reviewed_id == ids[2]
    table.setFocus()
    _press(qtbot, window, table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _press(qtbot, window, table, Qt.Key.Key_2)  # the right key; a new decision ends what could be redone
    assert window.model.item(1).reviewed_id == ids[1] and not window.act_redo.isEnabled()

    window.set_current_row(3)
    _press(qtbot, window, table, Qt.Key.Key_F)  # flag, then undo the flag: no class comes with it
    window.undo_decision()
    assert not window.model.item(3).flagged and window.model.item(3).reviewed_id is None

    store = ReviewStore.open(tmp_path / "reviews.sqlite3")
    case = store.open_case(folder.resolve())
    trail = [d.reviewed_id for d in case.decisions() if Path(d.image_path).name == "cell_0001.png"]
    assert trail == [ids[2], None, ids[2], None, ids[1]]  # every slip and correction, in order
    assert case.current_state()[window.model.item(1).image_hash].reviewed_id == ids[1]
    store.close()
    window.set_current_row(1)  # the review box counts the decisions; its tooltip is the trail, newest first
    assert "5 decisions on record" in window.prob_panel.review.text()
    trail_lines = window.prob_panel.review.toolTip().splitlines()
    assert len(trail_lines) == 5 and trail_lines[0].endswith(": Monocyte") and trail_lines[1].endswith(": no class")

    # A signed case refuses the undo like any other change, and the history keeps the step.
    window.review.sign([window.model.item(r).image_hash for r in (0, 1)])
    window.undo_decision()
    assert "signed" in window.status_label.text() and window.model.item(1).reviewed_id == ids[1]
    assert window.act_undo.isEnabled()

    # Opening another folder starts a new history.
    other = tmp_path / "other"
    _write_images(other, 2, seed=5)
    _open(qtbot, window, [other])
    assert not window.act_undo.isEnabled()
    window.undo_decision()
    assert window.status_label.text() == "Nothing to undo."


def test_durations_read_naturally() -> None:
    from gui.window_parts import duration_text

    assert duration_text(0.43) == "0.4 s"  # a quick folder: not "0 s"
    assert duration_text(9.97) == "10 s" and duration_text(75) == "1 min 15 s"
    assert duration_text(3 * 3600 + 125) == "3 h 02 min"


def test_the_empty_window_says_how_to_start_and_which_model_is_for_which_images(qtbot, tmp_path, models) -> None:
    from gui.window_parts import welcome_text

    window = _make_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.modelReady, timeout=30000):
        window.start([])
    shown = window.image_view._message.toPlainText()
    assert shown.startswith("Open an image or a folder") and f"Model in use: {window.model_info.name}" in shown
    assert not window.prob_panel.review.isVisible() and not window.prob_panel.hint.isVisible()

    text = welcome_text("B", {"A": "whole smear fields", "B": "single cells", "C": ""})
    assert "Model in use: B: single cells" in text and "•  A: whole smear fields" in text and "•  C" in text
    assert "not a diagnosis" in text
    assert "Also installed" not in welcome_text("B", {"B": "single cells"})


def test_case_details_name_the_sample_in_the_title_and_are_refused_once_signed(
    qtbot, tmp_path, models, monkeypatch
) -> None:
    import gui.main_window
    from gui.case_details import CaseDetailsDialog

    folder = tmp_path / "run 3"
    _write_images(folder, 2)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    assert window.windowTitle() == "HemaLens — run 3"
    typed = {"sample": " S-24-1173 ", "note": "EDTA"}

    class Typed(CaseDetailsDialog):
        def exec(self) -> int:
            assert self.sample.text() == typed.get("before", "")  # opens with the details in force
            self.sample.setText(typed["sample"])
            self.note.setPlainText(typed["note"])
            return self.DialogCode.Accepted

    monkeypatch.setattr(gui.main_window, "CaseDetailsDialog", Typed)
    window.edit_case_details()
    assert window.windowTitle() == "HemaLens — S-24-1173 · run 3"
    assert window.review.details().sample_id == "S-24-1173" and window.review.details().note == "EDTA"
    captions: list = []  # a saved or copied picture names the sample in its caption
    monkeypatch.setattr(gui.main_window, "captioned", lambda picture, lines: captions.append(lines) or picture)
    if not window.image_view.has_image():
        qtbot.waitSignal(window.detailShown, timeout=10000).wait()
    assert window.view_image() is not None and captions[-1][0].startswith("Sample S-24-1173 · cell_0000.png")

    for row in range(2):
        _on_screen(qtbot, window, row)
        window.confirm_call()
    window.review.sign([i.image_hash for i in window.model.items()])
    typed.update(before="S-24-1173", sample="S-other")
    window.edit_case_details()
    assert "signed" in window.status_label.text() and window.review.details().sample_id == "S-24-1173"
    assert window.windowTitle() == "HemaLens — S-24-1173 · run 3"
    assert not window.review_banner.isVisible()  # a signed case's refusal is not a broken store

    window.review.reopen("add the tube number")
    window.review._store._failure = "The disk is full."  # reads still work, the next write fails
    typed.update(sample="S-24-1173/2")
    window.edit_case_details()
    assert "not saved" in window.status_label.text() and window.review.details().sample_id == "S-24-1173"
    assert window.review_banner.isVisible() and "case details were not recorded" in window.review_banner.text()

    window.review._store._conn.close()  # the database goes away under the app (disk, lock, ...)
    monkeypatch.setattr(gui.main_window, "CaseDetailsDialog", None)  # an empty dialog would invite a blind overwrite
    window.edit_case_details()
    assert window.status_label.text().startswith("Case details cannot be read, so they cannot be changed now")


def test_an_image_added_to_a_signed_case_is_said_to_be_outside_the_sign_off(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 2)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    for row in range(2):
        _on_screen(qtbot, window, row)
        window.confirm_call()
    window.review.sign([i.image_hash for i in window.model.items()])
    window._update_sign_state()
    assert "Reopen signed case… to change it" in window.review_banner.text()
    signed_at = window.review.signed_by()[1]  # the banner says when in words, not as the stored ISO text
    assert signed_at not in window.review_banner.text()
    assert f"at {readable_time(signed_at)}." in window.review_banner.text()
    _write_images(tmp_path / "more", 3, seed=9)[2].rename(folder / "cell_late.png")
    _open(qtbot, window, [folder])
    text = window.review_banner.text()
    assert "but 1 image(s) were added or changed since and are not covered" in text
    assert window.act_reopen.isEnabled() and not window.act_sign.isEnabled()


def test_a_file_name_that_looks_like_markup_is_shown_as_it_is(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    (path,) = _write_images(folder, 1)
    odd = path.rename(folder / "<b>bold<i>x.png")
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    _on_screen(qtbot, window, 0)
    window.confirm_call()
    assert odd.name in window.status_label.text()
    assert "&lt;b&gt;bold&lt;i&gt;x.png" in QLabel.text(window.status_label)  # what Qt draws: the tags as text
    for label in (window.review_banner, window.prob_panel.review, window.prob_panel.warnings, window.reviewer_label):
        assert label.textFormat() == Qt.TextFormat.PlainText  # Qt would otherwise render "<b>" and hide the tags


def test_a_long_status_message_ends_in_an_ellipsis_with_the_whole_text_in_its_tooltip(qtbot) -> None:
    from gui.heatmap_bar import StatusLine

    line = StatusLine()
    qtbot.addWidget(line)
    message = "Classified 23 of 25 images in 7.1 s; 2 could not be read (see the red rows)."
    line.setText(message)
    line.resize(160, 20)
    line.show()
    qtbot.waitExposed(line)
    shown = QLabel.text(line)
    assert shown.endswith("…") and len(shown) < len(message)  # not cut mid-word by the status bar
    assert line.toolTip() == message and line.text() == message


def test_remembered_paths_keep_a_name_that_is_not_utf8(qapp, tmp_path) -> None:
    """Qt strings drop the odd byte of a Latin-1 name; "Open recent" then could not find the folder."""
    folder = Path(str(tmp_path / "Probe_\udce9"))  # b"Probe_\xe9"
    ini = str(tmp_path / "settings.ini")
    settings = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    settings.add_recent(folder)
    settings.add_recent(tmp_path / "plain")
    settings.set_model_path(folder / "model.onnx")
    settings.set_report_dir(folder)
    settings.q.sync()
    again = AppSettings(QSettings(ini, QSettings.Format.IniFormat))
    assert again.recent() == [str(tmp_path / "plain"), str(folder)]
    assert again.model_path() == folder / "model.onnx" and again.report_dir() == folder


def test_about_says_where_the_review_records_and_user_models_live(tmp_path, monkeypatch) -> None:
    from gui.about import about_html

    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "my models"))
    text = about_html(tmp_path / "a&b" / "reviews.sqlite3")
    assert f"{tmp_path}/a&amp;b/reviews.sqlite3" in text and str(tmp_path / "my models") in text
    assert "ONNX Runtime" in text and "research use only" in text.lower()
    assert "not open" in about_html(None)


def test_gallery_cells_keep_their_size_while_thumbnails_are_still_loading(qtbot, tmp_path, models) -> None:
    """The gallery's lists use one size for all cells, taken from the first; a first cell whose thumbnail was
    not decoded yet made every cell of its class a thin strip with no name."""
    from gui.gallery import GRID
    from gui.thumbnails import THUMB_SIZE

    folder = tmp_path / "smear"
    _write_images(folder, 6)
    window = _make_window(qtbot, tmp_path)
    window.model.set_thumbnail_getter(lambda path: None)  # nothing decoded yet
    _open(qtbot, window, [folder])
    window.tabs.setCurrentWidget(window.gallery)
    QApplication.processEvents()
    sections = [s for s in window.gallery._sections if s.count()]
    assert sections
    for section in sections:
        cell = section.view.visualRect(section.proxy.index(0, 0))
        assert cell.height() >= THUMB_SIZE and cell.width() <= GRID.width()


def test_enter_in_a_text_box_does_not_confirm_the_image_on_screen(qtbot, tmp_path, models) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    edit = window.batch_panel.filter_text
    edit.setFocus()
    qtbot.keyClicks(edit, "cell_0001")
    qtbot.keyClick(edit, Qt.Key.Key_Return)  # ends the typing: nothing is decided, the table takes over
    assert [i.reviewed_id for i in window.model.items()] == [None, None, None]
    assert window.batch_panel.table.hasFocus()
    spin = window.prob_panel.threshold
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "70")
    qtbot.keyClick(spin, Qt.Key.Key_Enter)  # the typed threshold is taken, nothing is decided
    assert [i.reviewed_id for i in window.model.items()] == [None, None, None]
    assert window.model.threshold == pytest.approx(0.70)
    window.batch_panel.table.setFocus()
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_Return)  # in the table, Enter still confirms
    assert sum(i.reviewed_id is not None for i in window.model.items()) == 1, window.status_label.text()
    window.engine.start_batch(window.model_info, [folder], None)  # a batch running: Esc in a box must not stop it
    stopped: list = []
    window.engine.cancel_batch = lambda: stopped.append(1)
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert not stopped and window.batch_panel.table.hasFocus()


def test_the_review_keys_reach_the_images_from_the_start_and_after_clicks_elsewhere(qtbot, tmp_path, models) -> None:
    """Under Xvfb the window opened with the keyboard in the filter box, so the first "2" filtered the table instead
    of setting class 2; after choosing a model in the picker, Down (next image) moved the picker to the next entry,
    which opened "Load model…" (or would have reclassified the folder with another model); after a click on the
    threshold's arrows Down lowered the threshold, and after a click on the side panel it scrolled the panel."""
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    make_classifier(models / "zz_second.onnx", num_classes=3, size=32, labels=LABELS, seed=5)  # listed after tiny
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    table = window.batch_panel.table
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=3000)
    assert QApplication.focusWidget() is table
    _press(qtbot, window, QApplication.focusWidget(), Qt.Key.Key_2)
    assert window.batch_panel.filter_text.text() == ""
    assert window.model.item(0).reviewed_id == window.model.class_ids[1]
    spin = window.prob_panel.threshold
    qtbot.mouseClick(spin, Qt.MouseButton.LeftButton, pos=QPoint(spin.width() - 6, 4))  # its up arrow
    assert spin.value() == 65
    qtbot.waitUntil(lambda: QApplication.focusWidget() is table, timeout=3000)
    qtbot.mouseClick(window.prob_panel.call, Qt.MouseButton.LeftButton)  # the side panel
    assert QApplication.focusWidget() is table
    row = window.current_row()
    _press(qtbot, window, QApplication.focusWidget(), Qt.Key.Key_Down)
    assert window.current_row() == row + 1 and spin.value() == 65
    qtbot.mouseClick(spin.lineEdit(), Qt.MouseButton.LeftButton)  # into the number: typing one takes the keyboard
    assert spin.hasFocus()
    table.setFocus()
    picker = window.picker
    chosen: list = []
    picker.modelChosen.connect(chosen.append)
    for combo in (picker, window.batch_panel.show_combo, window.batch_panel.class_combo):
        qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)  # opens its list; the click must not take the keyboard
        combo.hidePopup()
        assert QApplication.focusWidget() is table, combo
    assert picker.currentIndex() == 0 and picker.itemData(1) == str(models / "zz_second.onnx")
    picker.setFocus(Qt.FocusReason.TabFocusReason)  # still reachable with Tab; a choice there hands the keys back
    qtbot.keyClick(picker, Qt.Key.Key_Down)
    assert chosen == [models / "zz_second.onnx"] and QApplication.focusWidget() is table


def test_an_identical_copy_in_the_folder_is_said_and_counted_once_as_in_the_report(qtbot, tmp_path, models) -> None:
    """A file copied twice into a folder is one record (keyed by content): the report counted it once while the
    window counted it twice, and nothing said the two rows were one image."""
    import shutil

    from review.report import build_report

    folder = tmp_path / "smear"
    paths = _write_images(folder, 3)
    shutil.copy(paths[0], folder / "cell_0000_copy.png")  # listed right after its original
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    names = [window.model.item(r).path.name for r in range(4)]
    assert names[:2] == ["cell_0000.png", "cell_0000_copy.png"]
    copy = window.model.item(1)
    assert copy.same_as == "cell_0000.png" and window.model.item(0).same_as == ""
    assert _row_texts(window, 1)[1] == "Copy"
    assert "identical file to cell_0000.png" in window.model.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert window.status_label.text().startswith("Classified 3 of 3 images in ")
    assert "(1 more file is an identical copy)." in window.status_label.text()
    window._update_differential()
    summary = window.diff_panel.summary.text()
    assert summary.startswith("3 of 3 classified") and "1 identical copy not counted" in summary
    assert sum(r.ai_count for r in window.model.differential().rows) == 3
    _on_screen(qtbot, window, 1)
    assert any("identical file to cell_0000.png" in w for w in window.prob_panel.warnings.text().splitlines())
    assert len(build_report(window.review.case).rows) == 3  # the report's count, now the window's too
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_2)  # the copy decided: its first file shows it too
    assert [window.model.item(r).reviewed_id for r in (0, 1)] == [window.model.class_ids[1]] * 2
    assert window.model.differential().reviewed == 1


def test_a_window_closed_while_an_image_opens_is_left_alone(qtbot, tmp_path, models) -> None:
    """The "Opening …" notice was a bare 150 ms timer: it fired after its window was gone and called into the
    deleted image view (seen as a RuntimeError in the Qt event loop while another test ran)."""
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))  # not qtbot's: deleted below
    window.show()
    qtbot.waitExposed(window)
    _open(qtbot, window, [folder])
    _on_screen(qtbot, window, 0)
    window.set_current_row(2)  # its image still loading...
    window.close()  # ...when the window goes
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qtbot.wait(400)  # past the notice's 150 ms: nothing may call into the deleted window


def test_a_call_says_how_the_models_calls_of_that_class_fared_on_its_test_images(qtbot, tmp_path, monkeypatch) -> None:
    """The probability says how sure the model is of this image; the class's record (from the confusion matrix
    the model carries) says how often such calls were right, and what the wrong ones were."""
    import json

    from tests.model_factory import build_classifier_model

    model = build_classifier_model(labels=LABELS)
    doc = json.loads({p.key: p.value for p in model.metadata_props}["hemalens"])
    doc.setdefault("provenance", {})["metrics"] = {"confusion_matrix": [[8, 1, 1], [0, 9, 1], [2, 0, 9]]}
    del model.metadata_props[:]
    helper.set_model_props(model, {"hemalens": json.dumps(doc)})
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "scored.onnx").write_bytes(model.SerializeToString())
    _bundle(monkeypatch, tmp_path, folder)
    _write_images(tmp_path / "smear", 2)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [tmp_path / "smear"])
    _on_screen(qtbot, window, 0)
    call = LABELS[int(np.argmax(window.model.item(0).probabilities))]
    expected = {LABELS[0]: "8 of its 10", LABELS[1]: "9 of its 10", LABELS[2]: "9 of its 11"}[call]
    assert f"On its test images, {expected} {call} calls were right" in window.prob_panel.detail.text()


def test_a_slow_name_filter_waits_for_a_pause_in_typing(qtbot, tmp_path, models, monkeypatch) -> None:
    """On 5,000 images with the gallery shown one filter pass took 100-180 ms, and on every keystroke the letters
    lagged behind the typing. Once a pass is that slow, keystrokes wait for a pause; Enter applies at once."""
    folder = tmp_path / "smear"
    _write_images(folder, 4)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    panel = window.batch_panel
    set_text = type(panel.proxy).set_text
    passes: list[str] = []

    def slow_set_text(proxy, text: str) -> None:  # as slow as a large folder's
        passes.append(text)
        time.sleep(0.08)
        set_text(proxy, text)

    monkeypatch.setattr(type(panel.proxy), "set_text", slow_set_text)
    panel.filter_text.setFocus()
    qtbot.keyClicks(panel.filter_text, "cell_000")
    assert passes == ["c"]  # the first pass showed it is slow; the rest wait
    qtbot.waitUntil(lambda: passes == ["c", "cell_000"], timeout=3000)
    assert panel.proxy.rowCount() == 4
    qtbot.keyClicks(panel.filter_text, "2")
    qtbot.keyClick(panel.filter_text, Qt.Key.Key_Return)  # Enter: no wait, and the table shows the filtered rows
    assert passes[-1] == "cell_0002" and panel.proxy.rowCount() == 1 and panel.table.hasFocus()
    monkeypatch.setattr(type(panel.proxy), "set_text", set_text)  # fast again: the next keystroke waits once...
    panel.filter_text.setFocus()
    qtbot.keyClick(panel.filter_text, Qt.Key.Key_Backspace)
    assert panel.proxy.rowCount() == 1
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 4, timeout=3000)
    monkeypatch.setattr(gui.batch_panel, "SLOW_FILTER_S", 10.0)  # that pass counts as fast, however busy the machine
    qtbot.keyClicks(panel.filter_text, "1")  # ...and then each applies at once
    assert panel.proxy.rowCount() == 1


def test_files_in_sub_folders_are_named_by_their_path_under_the_opened_folder(qtbot, tmp_path, models) -> None:
    """One sub-folder per slide (or per class, in a labelled folder) often holds files of the same names; the list
    named both 'cell_0000.png', so which slide a row came from was only in its tooltip."""
    folder = tmp_path / "case"
    _write_images(folder / "slide A", 2)
    _write_images(folder / "slide B", 2, seed=2)
    _write_images(folder, 1, seed=3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    names = sorted(window.model.index(r, COL_IMAGE).data() for r in range(window.model.rowCount()))
    assert names == ["cell_0000.png", "slide A/cell_0000.png", "slide A/cell_0001.png", "slide B/cell_0000.png",
                     "slide B/cell_0001.png"]
    qtbot.waitUntil(lambda: "3 folders counted as one case" in window.diff_panel.summary.text(), timeout=3000)
    panel = window.batch_panel
    panel.proxy.set_text("slide b")  # the filter matches the sub-folder too
    assert panel.proxy.rowCount() == 2
    row = window.model.row_of(folder / "slide B" / "cell_0001.png")
    assert window.model.name_of(window.model.item(row).path) == "slide B/cell_0001.png"
    from PySide6.QtWidgets import QStyleOptionViewItem

    window.act_gallery.trigger()
    section = next(s for s in window.gallery._sections if row in s.source_rows())
    option = QStyleOptionViewItem()
    section.view.itemDelegate().initStyleOption(option, section.proxy.mapFromSource(window.model.index(row, 0)))
    assert option.text == "cell_0001.png"  # a gallery cell is narrow: its own name (the path is in the tooltip)
    _open(qtbot, window, [folder / "slide B" / "cell_0001.png", folder / "slide A" / "cell_0000.png"])
    names = {window.model.index(r, COL_IMAGE).data() for r in range(window.model.rowCount())}
    assert names == {"slide A/cell_0000.png", "slide B/cell_0001.png"}  # files opened together: under their parent
    _open(qtbot, window, [folder / "slide B" / "cell_0001.png"])
    assert window.model.index(0, COL_IMAGE).data() == "cell_0001.png"
    qtbot.waitUntil(lambda: "1 of 1 classified" in window.diff_panel.summary.text(), timeout=3000)
    assert "counted as one case" not in window.diff_panel.summary.text()
    link = tmp_path / "linked case"  # opened through a symbolic link: named as opened, without resolving each file
    link.symlink_to(folder, target_is_directory=True)
    _open(qtbot, window, [link])
    assert "slide A/cell_0000.png" in {window.model.index(r, COL_IMAGE).data() for r in range(window.model.rowCount())}


def test_a_sub_folder_that_cannot_be_read_gets_a_failed_row_saying_so(qtbot, tmp_path, models, monkeypatch) -> None:
    import os

    folder = tmp_path / "case"
    _write_images(folder / "slide A", 2)
    _write_images(folder / "slide B", 2)
    locked, real_scandir = folder / "slide B", os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    assert window.model.rowCount() == 3
    row = window.model.row_of(locked)
    assert _row_texts(window, row)[:2] == ["slide B", "Failed"]
    assert window.model.item(row).error.endswith(
        "a folder that cannot be read (Permission denied), so the images in it were not listed")


def test_a_faithful_conversion_is_said_but_does_not_flag_the_image(qtbot, tmp_path, models) -> None:
    """A lab whose camera writes 12-bit TIFFs saw ⚠ Note on every row (the bit depth scaled), so the notes that
    matter (greyscale, unlike the training images) no longer stood out, and the "With notes" filter listed all."""
    folder = tmp_path / "camera"
    folder.mkdir()
    rgb = np.random.default_rng(5).integers(0, 256, (48, 48, 3))
    cv2.imwrite(str(folder / "a_12bit.png"), (rgb * 16).astype(np.uint16))
    cv2.imwrite(str(folder / "b_grey.png"), rgb[:, :, 0].astype(np.uint8))
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    twelve, grey = (window.model.row_of(folder / name) for name in ("a_12bit.png", "b_grey.png"))
    assert window.model.item(twelve).notes == ("12-bit image (largest value 4080) scaled to 8-bit",)
    assert window.model.index(twelve, COL_STATUS).data() == "Done"
    assert window.model.index(grey, COL_STATUS).data() == "⚠ Note"
    window.batch_panel.show_combo.setCurrentText("With notes")
    assert window.batch_panel.proxy.rowCount() == 1
    window.batch_panel.show_combo.setCurrentText("All images")
    _on_screen(qtbot, window, twelve)
    panel = window.prob_panel
    assert panel.warnings.isHidden() and panel.conversions.isVisible()
    assert panel.conversions.text() == "12-bit image (largest value 4080) scaled to 8-bit"
    _on_screen(qtbot, window, grey)
    assert panel.warnings.isVisible() and panel.warnings.text() == "⚠ greyscale shown as RGB"
    assert panel.conversions.isHidden()


def test_heatmap_colours_for_colour_blind_viewers_are_chosen_in_the_view_menu_and_kept(qtbot, tmp_path,
                                                                                       models) -> None:
    """Jet's red and green read alike to about 1 man in 12; View → Heatmap colours offers cividis (blue to yellow)
    for the heatmap on screen, its legend and the ones that follow, and it is kept for the next start."""
    folder = tmp_path / "smear"
    _write_images(folder, 2)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    _on_screen(qtbot, window, 0)

    def hot_end_of_legend() -> tuple[int, int, int]:
        image = window.heatmap_bar.legend.pixmap().toImage()
        colour = image.pixelColor(image.width() - 1, image.height() // 2)
        return colour.red(), colour.green(), colour.blue()

    assert [a.data() for a in window.colour_actions if a.isChecked()] == ["jet"]
    red, green, _ = hot_end_of_legend()
    assert red > 100 and green < 60  # jet ends in dark red
    jet_heatmap = window._detail.heatmap.copy()
    next(a for a in window.colour_actions if a.data() == "cividis").trigger()
    red, green, _ = hot_end_of_legend()
    assert red > 200 and green > 200  # cividis ends in yellow
    qtbot.waitUntil(lambda: window._detail.heatmap != jet_heatmap, timeout=10000)  # the image on screen, recoloured
    assert window.engine.colormap == "cividis"
    window.close()

    again = _make_window(qtbot, tmp_path)
    assert [a.data() for a in again.colour_actions if a.isChecked()] == ["cividis"]
    assert again.engine.colormap == "cividis"


def test_a_held_key_makes_one_decision_but_still_moves_through_the_images(qtbot, tmp_path) -> None:
    """Under Xvfb, holding Enter for 1.5 s confirmed 23 images nobody looked at; now it confirms one. Qt
    repeats an action's shortcut while its key is held unless the action says otherwise."""
    window = _make_window(qtbot, tmp_path)
    deciding = [window.act_confirm, *window.class_actions, window.act_unidentified, window.act_flag,
                window.act_clear, window.act_undo, window.act_redo]
    assert not any(act.autoRepeat() for act in deciding)
    assert window.act_next.autoRepeat() and window.act_prev.autoRepeat()


def test_a_decision_taken_from_another_window_shows_on_every_copy_of_the_image(qtbot, tmp_path, models) -> None:
    """Rows take a record on every file of its content: a copy decided in another window and then shown here took
    the decision on the copy alone, and the first file, which is the one counted, kept its old state."""
    import shutil

    folder = tmp_path / "smear"
    paths = _write_images(folder, 2)
    shutil.copy(paths[0], folder / "cell_0000_copy.png")
    first = _make_window(qtbot, tmp_path)
    _open(qtbot, first, [folder])
    second = _make_window(qtbot, tmp_path)
    _open(qtbot, second, [folder])
    ids = first.model.class_ids
    _on_screen(qtbot, second, 1)
    second.assign_class(ids[2])
    first.set_current_row(1)  # showing the copy takes what is on record for it, for the first file too
    assert [first.model.item(r).reviewed_id for r in (0, 1)] == [ids[2], ids[2]]
    assert first.model.differential().reviewed == 1


def test_two_windows_on_one_case_never_overwrite_a_decision_they_have_not_shown(qtbot, tmp_path, models) -> None:
    """The app started twice on the same folder (a second double-click): each window keeps to what is on
    record. A decision made against an out-of-date row is refused and the row shows the other window's;
    showing an image or coming back to a window takes what the other one decided; an undo does not
    overwrite a decision made elsewhere since."""
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    first = _make_window(qtbot, tmp_path)
    _open(qtbot, first, [folder])
    second = _make_window(qtbot, tmp_path)
    _open(qtbot, second, [folder])
    ids = first.model.class_ids
    first.set_current_row(0)
    second.set_current_row(0)

    _on_screen(qtbot, first)

    first.assign_class(ids[1])
    _on_screen(qtbot, second)
    second.assign_class(ids[2])  # the second window still shows row 0 undecided: refused
    assert second.current_row() == 0 and second.model.item(0).reviewed_id == ids[1]
    assert second.status_label.text().startswith("Not recorded: cell_0000.png was decided meanwhile by")
    _on_screen(qtbot, second)
    second.assign_class(ids[2])  # now it has been seen: recorded, as a second decision
    assert second.model.item(0).reviewed_id == ids[2]

    _on_screen(qtbot, second, 2)
    second.toggle_flag()
    first.set_current_row(2)  # showing an image takes what is on record for it
    assert first.model.item(2).flagged and first.model.item(0).reviewed_id == ids[1]

    second.activateWindow()
    qtbot.waitUntil(second.isActiveWindow)
    first.activateWindow()  # coming back to the first window takes what the second one decided
    qtbot.waitUntil(first.isActiveWindow)
    assert first.model.item(0).reviewed_id == ids[2]
    assert first.status_label.text().startswith("In another window on this case, 1 image(s) were decided")
    assert LABELS[2] in _row_texts(first, 0)[COL_REVIEWED] and first.model.differential().flagged == 1

    first.set_current_row(1)
    first.undo_decision()  # its decision on row 0 was replaced by the second window's: left as it is
    assert first.model.item(0).reviewed_id == ids[2] and first.status_label.text().startswith("Left as it is")
    store = ReviewStore.open(tmp_path / "reviews.sqlite3")
    trail = [(Path(d.image_path).name, d.reviewed_id) for d in store.open_case(folder.resolve()).decisions()]
    store.close()
    assert trail == [("cell_0000.png", ids[1]), ("cell_0000.png", ids[2]), ("cell_0002.png", None)]

    # A sign-off, a reopening and case details made in one window show in the other when it is activated.
    def come_back_to_first() -> None:
        second.activateWindow()
        qtbot.waitUntil(second.isActiveWindow)
        first.activateWindow()
        qtbot.waitUntil(first.isActiveWindow)

    for row in range(3):
        _on_screen(qtbot, second, row)
        second.confirm_call()
    second.review.set_details("S-77", "")
    second.review.sign([i.image_hash for i in second.model.items()])
    come_back_to_first()
    assert first.review_banner.isVisible() and first.review_banner.text().startswith("This case was signed by")
    assert not first.act_sign.isEnabled() and first.windowTitle() == "HemaLens — S-77 · smear"
    assert "the sign-off or case details changed" in first.status_label.text()
    assert all(first.model.item(r).reviewed_id is not None for r in range(3))
    second.review.reopen("one more look")
    come_back_to_first()
    assert not first.review_banner.isVisible() and first.act_sign.isEnabled()


def test_a_resumed_case_keeps_this_sessions_decisions_when_the_model_is_switched(qtbot, tmp_path, models) -> None:
    """Switching model classifies the rows again; the records read when the folder was opened must not
    put back a decision that was changed since."""
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    ids = window.model.class_ids
    _on_screen(qtbot, window, 0)
    window.assign_class(ids[0])
    _open(qtbot, window, [folder])  # resumed: its records now say row 0 is ids[0]
    assert window.model.item(0).reviewed_id == ids[0]
    _on_screen(qtbot, window, 0)
    window.assign_class(ids[2])
    other = make_classifier(tmp_path / "other.onnx", num_classes=3, size=24, labels=LABELS, seed=3)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.load_model(other)
    assert window.model.item(0).reviewed_id == ids[2] and window.model.item(0).decision_count == 2


def test_an_image_that_went_away_after_classification_gets_no_class_unseen(qtbot, tmp_path, models) -> None:
    """The file was deleted (or moved, or broke) after the batch classified it: the table still has its call,
    but Enter used to confirm it with "Cannot show this image" on screen."""
    folder = tmp_path / "smear"
    paths = _write_images(folder, 3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    kept = paths[2].read_bytes()  # row 2: not the row after the one on screen, which is loaded ahead
    paths[2].unlink()
    with qtbot.waitSignal(window.detailShown, timeout=10000):
        window.set_current_row(2)
    assert window.prob_panel.review.text().startswith("Nothing to review while the image cannot be shown")
    table = window.batch_panel.table
    table.setFocus()
    for key in (Qt.Key.Key_Return, Qt.Key.Key_2):
        _press(qtbot, window, table, key)
        assert window.model.item(2).reviewed_id is None and window.current_row() == 2
        assert "cannot be shown now" in window.status_label.text()
    _press(qtbot, window, table, Qt.Key.Key_F)  # a flag for the pathologist still goes on record
    assert window.model.item(2).flagged

    paths[2].write_bytes(kept)  # back in place: once it is on screen it can be decided
    with qtbot.waitSignal(window.detailShown, timeout=10000):
        window.set_current_row(0)
    with qtbot.waitSignal(window.detailShown, timeout=10000):
        window.set_current_row(2)
    _press(qtbot, window, table, Qt.Key.Key_Return)
    assert window.model.item(2).reviewed_id == window.model.ai_call_of(window.model.item(2))


def test_a_slow_image_is_not_judged_by_the_one_before_it(qtbot, tmp_path, models, monkeypatch) -> None:
    """A large scan took half a minute to show: meanwhile the previous image stayed on screen beside the new
    row's call, and Enter confirmed the image nobody had seen."""
    import threading

    folder = tmp_path / "smear"
    _write_images(folder, 3)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    _on_screen(qtbot, window, 0)
    real, opened = inference.images.load_image, threading.Event()
    monkeypatch.setattr(inference.images, "load_image", lambda *a, **k: opened.wait(10) and real(*a, **k))
    window.set_current_row(2)  # row 1, next after the one on screen, was loaded ahead
    qtbot.waitUntil(lambda: not window.image_view.has_image(), timeout=5000)  # the previous image goes
    assert window.image_view._message.toPlainText() == "Opening cell_0002.png…"
    assert window.prob_panel.review.text().startswith("Opening the image")  # not "Enter confirms"
    window.confirm_call()
    assert window.model.item(2).reviewed_id is None
    assert window.status_label.text().startswith("Wait until cell_0002.png is on screen")
    window.toggle_flag()  # a flag asks a pathologist to look: that needs no judgement of the image
    assert window.model.item(2).flagged
    opened.set()
    qtbot.waitUntil(window.image_shown, timeout=10000)
    assert window.image_view.has_image() and "Opening" not in window.prob_panel.review.text()
    window.confirm_call()
    assert window.model.item(2).reviewed_id == window.model.ai_call_of(window.model.item(2))


def test_a_large_scan_is_saved_as_a_picture_of_bounded_size_that_says_so(qtbot, tmp_path, models, monkeypatch) -> None:
    """A 9000 px scan was composed and encoded at full size on the GUI thread (16 s) into a picture too large
    to e-mail; the picture is now at most PICTURE_MAX_SIDE px and its caption gives both sizes."""
    import gui.main_window
    from gui.image_view import PICTURE_MAX_SIDE

    folder = tmp_path / "scan"
    folder.mkdir()
    wide = np.full((600, PICTURE_MAX_SIDE + 904, 3), 200, np.uint8)
    cv2.circle(wide, (2500, 300), 150, (120, 40, 160), -1)
    cv2.imwrite(str(folder / "scan.png"), wide)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    _on_screen(qtbot, window, 0)
    captions: list = []
    monkeypatch.setattr(gui.main_window, "captioned", lambda picture, lines: captions.append(lines) or picture)
    picture = window.view_image()
    assert picture.width() == PICTURE_MAX_SIDE and abs(picture.height() - 600 * PICTURE_MAX_SIDE / 5000) < 1
    assert captions[-1][0].endswith(f" · {picture.width()} x {picture.height()} of 5000 x 600 px")


def test_the_next_image_is_loaded_while_this_one_is_looked_at(qtbot, tmp_path, models, monkeypatch) -> None:
    """A 20 MP photo took 0.4 s to show after each Enter. The row after the one on screen is loaded ahead, so it
    shows at once; asked for while still on its way it is used, not loaded twice; anything else drops it."""
    import threading

    folder = tmp_path / "smear"
    paths = _write_images(folder, 4)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    real, loads, gates = inference.images.load_image, [], {}

    def counted(path, *args, **kwargs):
        loads.append(Path(path).name)
        if (gate := gates.get(Path(path).name)) is not None:
            gate.wait(10)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(inference.images, "load_image", counted)
    import gui.main_window

    monkeypatch.setattr(gui.main_window, "LOAD_AHEAD_PIXELS", 48 * 48)  # these test images count as large
    _on_screen(qtbot, window, 1)
    _on_screen(qtbot, window, 0)
    qtbot.waitUntil(lambda: window.engine._ahead_result is not None, timeout=10000)  # row 1, loaded ahead
    assert window.engine._ahead_result.path == paths[1]
    loads.clear()
    with qtbot.waitSignal(window.detailShown, timeout=10000):
        window.set_current_row(1)
    assert window.image_view.has_image() and "cell_0001.png" not in loads  # shown from what was loaded ahead

    gates["cell_0002.png"] = threading.Event()  # row 2 is on its way (held) when it is asked for
    qtbot.waitUntil(lambda: "cell_0002.png" in loads, timeout=10000)
    with qtbot.waitSignal(window.detailShown, timeout=10000):
        window.set_current_row(2)
        gates["cell_0002.png"].set()
    assert loads.count("cell_0002.png") == 1 and window.current_row() == 2

    gates["cell_0003.png"] = threading.Event()  # row 3 on its way, but the technician goes back to row 0
    qtbot.waitUntil(lambda: "cell_0003.png" in loads, timeout=10000)
    shown: list[int] = []
    window.detailShown.connect(shown.append)
    window.set_current_row(0)
    gates["cell_0003.png"].set()
    qtbot.waitUntil(lambda: 0 in shown, timeout=10000)
    assert shown == [0] and window.engine._ahead_key is not None and window.engine._ahead_key[0] == paths[1]
