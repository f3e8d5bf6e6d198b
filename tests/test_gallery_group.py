"""Thumbnails selected together in the gallery are decided at once: one key, one transaction, one undo step,
never on a thumbnail that is not on screen, never over a decision made in another window."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from gui.calls import format_percent
from review.store import ReviewStore
from tests.model_factory import make_classifier
from tests.test_gui_window import LABELS, _bundle, _make_window, _open, _write_images


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    models = tmp_path / "models"
    make_classifier(models / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    _bundle(monkeypatch, tmp_path, models)
    folder = tmp_path / "smear"
    _write_images(folder, 16)
    win = _make_window(qtbot, tmp_path)
    _open(qtbot, win, [folder])
    win.tabs.setCurrentWidget(win.gallery)
    QApplication.processEvents()
    return win


def _biggest_section(window):
    section = max(window.gallery._sections, key=lambda s: s.count())
    assert section.count() >= 3, "the tiny model put fewer than 3 of 16 images in one class"
    return section


def _click(qtbot, section, row: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Click the thumbnail of source row ``row`` as a technician does (Shift or Ctrl held to select more)."""
    index = section.proxy.mapFromSource(section.proxy.sourceModel().index(row, 0))
    section.view.scrollTo(index)
    qtbot.mouseClick(section.view.viewport(), Qt.MouseButton.LeftButton, modifiers,
                     section.view.visualRect(index).center())


def _select(qtbot, window, section, rows: list[int]) -> None:
    """Click the first thumbnail, Shift+click the last, and wait until every thumbnail is on screen."""
    _click(qtbot, section, rows[0])
    _click(qtbot, section, rows[-1], Qt.KeyboardModifier.ShiftModifier)
    assert window.selected_group() == rows
    paths = [window.model.item(r).path for r in rows]
    qtbot.waitUntil(lambda: all(window.thumbnails.shown(p) for p in paths), timeout=10000)


def _recorded(window, row: int):
    """What the review records hold for a row's image: (class, flagged), or None when never decided."""
    state = window.review.states().get(window.model.item(row).image_hash)
    return None if state is None or not state.decision_count else (state.reviewed_id, state.flagged)


def test_enter_confirms_the_group_undecided_images_and_ctrl_z_undoes_them_at_once(qtbot, window) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    calls = {r: window.model.ai_call_of(window.model.item(r)) for r in rows}
    other = next(cid for cid in window.model.class_ids if cid != calls[rows[1]])
    window.set_current_row(rows[1])  # one of them was corrected before, one by one
    qtbot.waitUntil(window.image_shown, timeout=10000)
    window.assign_class(other)
    assert _recorded(window, rows[1]) == (other, False)

    _select(qtbot, window, section, rows)
    assert "3 selected in" in window.status_label.text()
    box = window.prob_panel.review.text()
    assert "Selected together: 3 in" in box and "(2 not reviewed yet)" in box and "Enter confirms" in box
    least = min(rows, key=lambda r: window.model.item(r).probabilities.max())
    assert (f"Least sure AI call: {format_percent(window.model.item(least).probabilities.max())} "
            f"({window.model.item(least).path.name})") in box  # a group hides no doubt one image would show
    qtbot.keyClick(section.view, Qt.Key.Key_Return)
    assert _recorded(window, rows[0]) == (calls[rows[0]], False)
    assert _recorded(window, rows[2]) == (calls[rows[2]], False)
    assert _recorded(window, rows[1]) == (other, False)  # the correction is not confirmed over
    assert "2 images confirmed; 1 left as they were" in window.status_label.text()
    assert [window.model.item(r).reviewer for r in (rows[0], rows[2])] == [window.review.user] * 2

    qtbot.keyClick(section.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _recorded(window, rows[0]) == (None, False) and _recorded(window, rows[2]) == (None, False)
    assert _recorded(window, rows[1]) == (other, False)  # the earlier single decision is the next step back
    assert "Undone, back to: the group of 2 images" in window.status_label.text()
    assert [window.model.item(r).reviewed_id for r in rows] == [None, other, None]
    window.redo_decision()
    assert [window.model.item(r).reviewed_id for r in rows] == [calls[rows[0]], other, calls[rows[2]]]
    assert window.current_row() == rows[0]  # undo and redo show the group's first image, with its trail
    assert "one of 2 decided together in the gallery" in window.prob_panel.review.toolTip()
    # Every step is in the audit trail: decided, undone, redone.
    assert len(window.review.history(window.model.item(rows[0]).image_hash)) == 3


def test_class_keys_flag_and_backspace_apply_to_every_selected_thumbnail(qtbot, window) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    _select(qtbot, window, section, rows)
    qtbot.keyClick(section.view, Qt.Key.Key_2)
    second = window.model.class_ids[1]
    assert [_recorded(window, r) for r in rows] == [(second, False)] * 3
    qtbot.keyClick(section.view, Qt.Key.Key_F)
    assert [_recorded(window, r) for r in rows] == [(second, True)] * 3
    assert "3 images flagged for pathologist" in window.status_label.text()
    qtbot.keyClick(section.view, Qt.Key.Key_F)  # all flagged: F takes the flag off all
    assert [_recorded(window, r) for r in rows] == [(second, False)] * 3
    qtbot.keyClick(section.view, Qt.Key.Key_Backspace)
    assert [_recorded(window, r) for r in rows] == [(None, False)] * 3
    qtbot.keyClick(section.view, Qt.Key.Key_Backspace)
    assert "Nothing to change" in window.status_label.text()


def test_a_group_is_not_decided_while_one_of_its_thumbnails_is_not_on_screen(qtbot, window, monkeypatch) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    window.model.item(rows[1]).notes = ("unlike this model's training images",)
    window.model.item(rows[0]).notes = ("12-bit image (largest value 4080) scaled to 8-bit",)  # said, not flagged
    _select(qtbot, window, section, rows)
    assert "1 of them with a ⚠ note" in window.prob_panel.review.text()
    missing = window.model.item(rows[2]).path
    shown = window.thumbnails.shown
    monkeypatch.setattr(window.thumbnails, "shown", lambda path: path != missing and shown(path))
    qtbot.keyClick(section.view, Qt.Key.Key_Return)
    assert [_recorded(window, r) for r in rows] == [None] * 3
    assert f"Not recorded: {missing.name} has not been shown as a thumbnail yet" in window.status_label.text()


def test_a_group_with_an_image_decided_in_another_window_is_recorded_not_at_all(qtbot, window) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    _select(qtbot, window, section, rows)
    item = window.model.item(rows[1])
    with ReviewStore.open(window.review.db_path) as other:  # the same case open in a second window
        other.open_case(window.review.case.folder).record_decision(
            item.path, item.image_hash, reviewed_id=window.model.class_ids[0], flagged=True, user="colleague")
    qtbot.keyClick(section.view, Qt.Key.Key_Return)
    assert _recorded(window, rows[0]) is None and _recorded(window, rows[2]) is None
    assert _recorded(window, rows[1]) == (window.model.class_ids[0], True)
    assert window.model.item(rows[1]).reviewer == "colleague" and window.model.item(rows[1]).flagged
    assert "Not recorded, none of the 3" in window.status_label.text()
    window.undo_decision()
    assert "Nothing to undo" in window.status_label.text()


def test_a_selection_stays_in_one_class_section(qtbot, window) -> None:
    window.set_current_row(0)
    qtbot.waitUntil(window.image_shown, timeout=10000)
    window.assign_class(next(c for c in window.model.class_ids if c != window.model.ai_call_of(window.model.item(0))))
    window.gallery.group_by.setCurrentIndex(1)  # by the class after review: image 0 now has a section of its own
    QApplication.processEvents()
    filled = [s for s in window.gallery._sections if s.count()]
    assert len(filled) >= 2
    first, second = filled[:2]
    _click(qtbot, first, first.source_rows()[0])
    _click(qtbot, second, second.source_rows()[0], Qt.KeyboardModifier.ControlModifier)
    assert window.gallery.selected_rows() == [second.source_rows()[0]]
    assert window.selected_group() is None  # one thumbnail: the keys decide the image on screen, as ever
    assert window.current_row() == second.source_rows()[0]


def test_a_group_in_the_table_tab_is_not_a_group(qtbot, window) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    _select(qtbot, window, section, rows)
    window.act_table.trigger()
    assert window.selected_group() is None
    assert "Selected together" not in window.prob_panel.review.text()  # the box is the image's own again


def test_the_group_store_write_is_all_or_nothing(tmp_path: Path) -> None:
    from review.store import DecisionRequest, ReviewConflictError

    with ReviewStore.open(tmp_path / "r.sqlite3") as store:
        case = store.open_case(tmp_path)
        a, b = "a" * 64, "b" * 64
        case.record_decision(tmp_path / "b.png", b, reviewed_id="x", flagged=False, user="u")
        with pytest.raises(ReviewConflictError):
            case.record_decisions([DecisionRequest(tmp_path / "a.png", a, "y", False, "", 0),
                                   DecisionRequest(tmp_path / "b.png", b, "y", False, "", 0)], user="u")
        assert case.history(a) == [] and len(case.history(b)) == 1
        done = case.record_decisions([DecisionRequest(tmp_path / "a.png", a, "y", True, "", 0),
                                      DecisionRequest(tmp_path / "b.png", b, "y", False, "", 1)], user="u")
        assert [(d.reviewed_id, d.flagged) for d in done] == [("y", True), ("y", False)]
        assert done[0].decided_at == done[1].decided_at
        assert [d.reviewed_id for d in case.history(b)] == ["x", "y"]
        # The audit trail tells decisions made together from those made one image at a time.
        assert [d.decided_together for d in case.history(b)] == [None, 2]
        from review.report import build_report, report_dict

        trail = report_dict(build_report(case))["audit_trail"]
        assert [t["decided_together"] for t in trail] == [None, 2, 2]


def test_ctrl_a_selects_the_whole_class_section_as_one_group(qtbot, window) -> None:
    section = _biggest_section(window)
    rows = section.source_rows()
    _click(qtbot, section, rows[0])
    qtbot.keyClick(section.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.selected_group() == rows
    assert f"{len(rows)} selected in" in window.status_label.text()


def test_a_thumbnail_with_a_note_carries_a_mark_in_the_gallery(qtbot, window) -> None:
    section = _biggest_section(window)
    noted, plain = section.source_rows()[:2]
    window.model.item(noted).notes = ("unlike this model's training images",)
    qtbot.waitUntil(lambda: all(window.thumbnails.shown(window.model.item(r).path) for r in (noted, plain)),
                    timeout=10000)
    section.view.viewport().update()
    image = section.view.viewport().grab().toImage()

    def badge_colour(row: int):
        rect = section.view.visualRect(section.proxy.mapFromSource(window.model.index(row, 0)))
        return image.pixelColor(rect.left() + 9, rect.top() + 32)  # inside the mark, beside its "!"

    assert badge_colour(noted).name() == "#b26a00"
    assert badge_colour(plain).name() != "#b26a00"


def test_selected_thumbnails_keep_their_colours_and_get_a_frame(qtbot, window) -> None:
    """The style's selection tint greyed the stain of every selected cell, the colours a group is judged on."""
    from gui.gallery import SELECTION_COLOUR

    section = _biggest_section(window)
    rows = section.source_rows()[:2]
    qtbot.waitUntil(lambda: all(window.thumbnails.shown(window.model.item(r).path) for r in rows), timeout=10000)
    rect = section.view.visualRect(section.proxy.mapFromSource(window.model.index(rows[1], 0)))
    before = section.view.viewport().grab().toImage()
    icon = rect.adjusted(5, 5, -5, 0)
    icon.setHeight(55)  # the test images are 48 px: the icon's rows, above the file name
    cell = [(x, y) for x in range(icon.left(), icon.right(), 2) for y in range(icon.top(), icon.bottom(), 2)
            if before.pixelColor(x, y).lightness() < 200]  # the thumbnail's pixels, not the background
    assert len(cell) > 100
    _select(qtbot, window, section, rows)
    after = section.view.viewport().grab().toImage()
    changed = sum(after.pixelColor(x, y) != before.pixelColor(x, y) for x, y in cell)
    assert changed == 0
    frame = after.pixelColor(rect.left() + 1, rect.center().y())
    assert frame.name() == SELECTION_COLOUR


def test_a_group_moved_to_another_class_section_can_be_undone(qtbot, window) -> None:
    """Grouped by the class after review, the decided thumbnails leave their section while the group is being
    applied; showing the current image on the way read the records before its row was counted, so it was
    counted twice and the undo was refused as a conflict with a decision "made meanwhile"."""
    window.gallery.group_by.setCurrentIndex(1)
    QApplication.processEvents()
    section = _biggest_section(window)
    rows = section.source_rows()
    _click(qtbot, section, rows[0])
    qtbot.keyClick(section.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    for r in rows:
        window.thumbnails.get(window.model.item(r).path)
    qtbot.waitUntil(lambda: all(window.thumbnails.shown(window.model.item(r).path) for r in rows), timeout=10000)
    other = next(c for c in window.model.class_ids if c != section.class_id)
    window.assign_class(other)
    assert [window.model.item(r).decision_count for r in rows] == [1] * len(rows)
    assert section.count() == 0  # they all moved to the other class's section
    window.undo_decision()
    assert "Undone" in window.status_label.text()
    assert [_recorded(window, r) for r in rows] == [(None, False)] * len(rows)


def test_a_thumbnail_looks_the_same_selected_in_the_table_too(qtbot) -> None:
    """The table's selected row showed its thumbnail tinted by the style (QIcon's generated Selected look)."""
    import numpy as np
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon, QPixmap

    from gui.qimage import rgb_to_qimage
    from gui.thumbnails import untinted_icon

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 120  # a stain-like pink
    pixmap = QPixmap.fromImage(rgb_to_qimage(rgb))
    icon = untinted_icon(pixmap)
    normal = icon.pixmap(QSize(40, 40), QIcon.Mode.Normal).toImage()
    assert icon.pixmap(QSize(40, 40), QIcon.Mode.Selected).toImage() == normal
    assert QIcon(pixmap).pixmap(QSize(40, 40), QIcon.Mode.Selected).toImage() != normal  # what the style does


def test_the_filter_above_the_tabs_filters_the_gallery_too(qtbot, window) -> None:
    """"To review" in the gallery: a group confirmed leaves the page, what is left is what still needs a look."""
    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    _select(qtbot, window, section, rows)
    qtbot.keyClick(section.view, Qt.Key.Key_Return)
    assert all(_recorded(window, r) is not None for r in rows)
    window.act_filter.trigger()  # Ctrl+F: the filter bar, without leaving the gallery
    assert window.tabs.currentWidget() is window.gallery and window.batch_panel.filter_text.hasFocus()
    window.batch_panel.show_combo.setCurrentText("To review")
    assert not set(rows) & set(window.gallery.ordered_rows())
    assert len(window.gallery.ordered_rows()) == 16 - 3
    assert "shown (filtered)" in section.header.text()
    window.undo_decision()  # back to review: they come back
    assert set(rows) <= set(window.gallery.ordered_rows())
    window.batch_panel.show_combo.setCurrentText("All images")
    assert len(window.gallery.ordered_rows()) == 16 and "(filtered)" not in section.header.text()


def test_c_comments_on_every_selected_thumbnail_and_says_what_it_replaces(qtbot, window, monkeypatch) -> None:
    import gui.review_actions

    section = _biggest_section(window)
    rows = section.source_rows()[:3]
    window.set_current_row(rows[1])
    qtbot.waitUntil(window.image_shown, timeout=10000)
    monkeypatch.setattr(gui.review_actions, "ask_text", lambda *a, **k: ("own words", True))
    window.edit_comment()  # one image's comment first
    asked = []
    monkeypatch.setattr(gui.review_actions, "ask_text",
                        lambda parent, title, prompt, text, *_: asked.append((prompt, text)) or ("  poor stain ", True))
    _select(qtbot, window, section, rows)
    qtbot.keyClick(section.view, Qt.Key.Key_C)
    assert asked == [("Comment on the 3 selected images. 1 of them have a comment of their own; this replaces it.",
                      "")]
    states = window.review.states()
    assert [states[window.model.item(r).image_hash].comment for r in rows] == ["poor stain"] * 3
    assert [_recorded(window, r) for r in rows] == [(None, False)] * 3  # no class given by a comment
    window.undo_decision()
    states = window.review.states()
    assert [states[window.model.item(r).image_hash].comment for r in rows] == ["", "own words", ""]
    offered = []
    monkeypatch.setattr(gui.review_actions, "ask_text", lambda *a: offered.append(a[4]) or ("", False))
    window.edit_comment()  # the prompt offers the comments written lately, newest first (the undo wrote one back)
    assert offered == [["own words", "poor stain"]]


def test_the_gallery_opens_on_the_current_image_with_the_keyboard_in_its_list(qtbot, tmp_path, monkeypatch) -> None:
    """Ctrl+G showed the top of the page and left the keyboard behind: Shift+arrows selected nothing."""
    models = tmp_path / "models"
    make_classifier(models / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    _bundle(monkeypatch, tmp_path, models)
    _write_images(tmp_path / "smear", 40)
    window = _make_window(qtbot, tmp_path, size=(1400, 520))
    _open(qtbot, window, [tmp_path / "smear"])
    window.tabs.setCurrentWidget(window.gallery)
    QApplication.processEvents()
    last = [s for s in window.gallery._sections if s.count() > 1][-1]
    target = last.source_rows()[-2]
    window.act_table.trigger()
    window.set_current_row(target)
    qtbot.waitUntil(window.image_shown, timeout=10000)
    window.act_gallery.trigger()
    section = next(s for s in window.gallery._sections if target in s.source_rows())
    qtbot.waitUntil(lambda: section.view.hasFocus(), timeout=5000)
    index = section.proxy.mapFromSource(window.model.index(target, 0))

    def on_screen() -> bool:
        centre = section.view.mapTo(window.gallery.scroll.viewport(), section.view.visualRect(index).center())
        return window.gallery.scroll.viewport().rect().contains(centre)

    qtbot.waitUntil(on_screen, timeout=3000)  # scrolled to it once the sections are laid out
    qtbot.keyClick(section.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.selected_group() == section.source_rows()[-2:]
    assert window.current_row() == section.source_rows()[-1]


def test_least_sure_first_leads_each_class_with_its_weakest_calls(qtbot, window) -> None:
    section = _biggest_section(window)
    file_order = section.source_rows()
    assert file_order == sorted(file_order)
    window.gallery.order.setCurrentText("Least sure first")
    section = _biggest_section(window)
    tops = [float(window.model.item(r).probabilities.max()) for r in section.source_rows()]
    assert tops == sorted(tops) and sorted(section.source_rows()) == file_order
    window.set_current_row(section.source_rows()[0])
    window.step(1)  # Space and PageDown go through them in that order
    assert window.current_row() == section.source_rows()[1]
    # A Shift+click range is of the thumbnails as shown, so the least sure ones can be taken as a group.
    _select(qtbot, window, section, section.source_rows()[:3])
    window.gallery.order.setCurrentText("File order")
    assert _biggest_section(window).source_rows() == file_order


def test_the_probability_sits_inside_its_thumbnail_and_waits_for_it(qtbot, window) -> None:
    """Each thumbnail carries its call's probability (the gallery hid it); before the thumbnail was decoded the
    label was placed by an empty icon, on the cell above, and stayed there."""
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QStyleOptionViewItem

    section = _biggest_section(window)
    row = section.source_rows()[0]
    qtbot.waitUntil(lambda: window.thumbnails.shown(window.model.item(row).path), timeout=10000)
    index = section.proxy.mapFromSource(window.model.index(row, 0))
    option = QStyleOptionViewItem()
    section.view.initViewItemOption(option)
    option.rect = section.view.visualRect(index)
    delegate = section.view.itemDelegate()

    def box_in_cell():  # as paint asks: the cell's option filled in from the model, then the box
        filled = QStyleOptionViewItem(option)
        delegate.initStyleOption(filled, index)
        return delegate.probability_box(filled, QSize(40, 12))

    box = box_in_cell()
    assert box is not None and option.rect.contains(box)
    window.model.set_thumbnail_getter(lambda path: None)  # nothing decoded
    assert box_in_cell() is None


def test_large_thumbnails_come_from_their_own_loader_and_are_remembered(qtbot, tmp_path, monkeypatch) -> None:
    """Granules and chromatin need more than 96 px: Large decodes 160 px thumbnails for the gallery only."""
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QStyleOptionViewItem

    from gui.gallery import LARGE_THUMB

    models = tmp_path / "models"
    make_classifier(models / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    _bundle(monkeypatch, tmp_path, models)
    _write_images(tmp_path / "smear", 6, size=240)
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [tmp_path / "smear"])
    window.tabs.setCurrentWidget(window.gallery)
    window.gallery.size_choice.setCurrentText("Large")
    QApplication.processEvents()
    section = next(s for s in window.gallery._sections if s.count())
    row = section.source_rows()[0]
    path = window.model.item(row).path
    qtbot.waitUntil(lambda: window.gallery._large.shown(path), timeout=10000)
    index = section.proxy.mapFromSource(window.model.index(row, 0))
    assert section.view.visualRect(index).height() >= LARGE_THUMB
    option = QStyleOptionViewItem()
    section.view.itemDelegate().initStyleOption(option, index)
    assert option.icon.actualSize(QSize(400, 400)).width() == LARGE_THUMB
    assert option.decorationSize.width() == LARGE_THUMB  # drawn at that size, not at the small icon's
    assert window.thumbnails.get(path).actualSize(QSize(400, 400)).width() == 96  # the table's stay small
    window.close()
    again = _make_window(qtbot, tmp_path)  # same settings file
    assert again.gallery.size_choice.currentData() == LARGE_THUMB


def test_a_thumbnail_seen_then_dropped_from_the_cache_still_counts_as_shown(qtbot, tmp_path) -> None:
    """In a folder larger than the thumbnail cache, a group scrolled through was refused as "never shown"."""
    from gui.thumbnails import ThumbnailLoader

    paths = _write_images(tmp_path / "few", 3, size=64)
    loader = ThumbnailLoader(cache_size=1)
    try:
        for path in paths:
            loader.get(path)
        qtbot.waitUntil(lambda: all(loader.shown(p) for p in paths), timeout=10000)
        assert sum(loader.get(p) is not None for p in paths) == 1  # the cache keeps one, the others were seen
        loader.clear()  # a new folder: nothing of it was seen yet
        assert not any(loader.shown(p) for p in paths)
    finally:
        loader.stop()


def test_a_click_between_the_sections_leaves_the_arrows_to_the_thumbnails(qtbot, window) -> None:
    """The page behind the sections took the keyboard on a click, and the arrows then scrolled the page."""
    section = _biggest_section(window)
    rows = section.source_rows()
    _click(qtbot, section, rows[0])
    assert QApplication.focusWidget() is section.view
    page = window.gallery.page
    qtbot.mouseClick(page, Qt.MouseButton.LeftButton, pos=page.rect().bottomLeft() + QPoint(2, -2))  # below them all
    assert QApplication.focusWidget() is section.view
    for combo in (window.gallery.group_by, window.gallery.order, window.gallery.size_choice):
        qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)  # a click leaves the keys with the thumbnails...
        combo.hidePopup()
        assert QApplication.focusWidget() is section.view, combo
        assert combo.focusPolicy() == Qt.FocusPolicy.TabFocus  # ...and Tab still reaches it
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Right)
    assert window.current_row() == rows[1]


def test_a_comment_is_marked_in_the_table_and_on_its_thumbnail_and_can_be_filtered(qtbot, window, monkeypatch) -> None:
    """A comment showed only in the side panel, one image at a time: nothing told which images had one."""
    import gui.review_actions
    from gui.batch_model import COL_FLAG, COMMENT_MARK

    section = _biggest_section(window)
    row = section.source_rows()[1]

    def grey_in_badge() -> int:  # pixels of the comment badge's colour in its corner of the thumbnail
        index = section.proxy.mapFromSource(window.model.index(row, 0))
        cell = section.view.visualRect(index)
        image = section.view.viewport().grab().toImage()
        xs, ys = range(cell.right() - 22, cell.right() - 6), range(cell.top() + 24, cell.top() + 40)
        return sum(1 for x in xs for y in ys if image.pixelColor(x, y).name() == "#5f6368")

    assert grey_in_badge() == 0
    window.set_current_row(row)
    qtbot.waitUntil(window.image_shown, timeout=10000)
    monkeypatch.setattr(gui.review_actions, "ask_text", lambda *a, **k: ("smudge cell?", True))
    window.edit_comment()
    assert window.model.index(row, COL_FLAG).data() == COMMENT_MARK
    tip = window.model.headerData(COL_FLAG, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert f"{COMMENT_MARK} has a comment" in tip  # the header says what the mark means
    assert "Comment: smudge cell?" in window.model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
    section.view.viewport().update()
    qtbot.waitUntil(lambda: grey_in_badge() > 40, timeout=3000)
    window.batch_panel.show_combo.setCurrentText("With comments")
    assert window.batch_panel.ordered_rows() == [row] and window.gallery.ordered_rows() == [row]
    window.batch_panel.show_combo.setCurrentText("All images")
    window.model.set_reviews([row], [(None, True)])  # flagged too: both marks, flagged ones sort first
    assert window.model.index(row, COL_FLAG).data() == "⚑" + COMMENT_MARK


def test_a_group_holding_a_file_and_its_identical_copy_decides_both_in_one_record(qtbot, tmp_path, monkeypatch) -> None:
    """Two files with one content are one record: the group writes it once and says both were decided (it said
    "1 left as they were" of the copy), and both rows show the decision."""
    import shutil

    models = tmp_path / "models"
    make_classifier(models / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    _bundle(monkeypatch, tmp_path, models)
    folder = tmp_path / "smear"
    paths = _write_images(folder, 4)
    shutil.copy(paths[0], folder / "cell_0000_copy.png")
    window = _make_window(qtbot, tmp_path)
    _open(qtbot, window, [folder])
    window.tabs.setCurrentWidget(window.gallery)
    QApplication.processEvents()
    section = next(s for s in window.gallery._sections if 0 in s.source_rows())
    assert section.source_rows()[:2] == [0, 1] and window.model.item(1).same_as == "cell_0000.png"
    _select(qtbot, window, section, [0, 1])
    qtbot.keyClick(section.view, Qt.Key.Key_Return)
    assert "Saved: 2 images confirmed. Ctrl+Z" in window.status_label.text()
    call = window.model.ai_call_of(window.model.item(0))
    assert [window.model.item(r).reviewed_id for r in (0, 1)] == [call, call]
    assert len(window.review.case.decisions()) == 1  # one record for the one content
