"""The window's review actions: decide, decide a gallery group at once, undo and redo, and take what another
window recorded on the same case.

Why a module of its own: these are the rules that keep a technician's decisions right (a class is given only
to an image that is on screen, every write is committed before it shows, a decision made elsewhere is never
overwritten); the window around them only lays out and moves between images. ``ReviewActions`` is mixed into
:class:`gui.main_window.MainWindow` and uses the window's parts named in its annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QTabWidget

from gui.calls import class_name, format_percent
from gui.decision_history import DecisionChange, DecisionHistory, DecisionStep, ReviewState
from gui.items import FAILED, ImageItem
from gui.plain_dialogs import ask_text
from review.store import DecisionRequest, ReviewConflictError

if TYPE_CHECKING:
    from gui.batch_model import BatchTableModel
    from gui.gallery import GalleryView
    from gui.probability_panel import ProbabilityPanel
    from gui.review_bridge import ReviewBridge
    from gui.thumbnails import ThumbnailLoader
    from gui.window_parts import Banner
    from gui.workers import DetailResult

GROUP_NAMES_SHOWN = 3  # file names a message about a group lists before "…"


class ReviewActions:
    """Decisions on the current image, or on the thumbnails selected together in the gallery."""

    model: BatchTableModel
    review: ReviewBridge
    history: DecisionHistory
    gallery: GalleryView
    tabs: QTabWidget
    thumbnails: ThumbnailLoader
    prob_panel: ProbabilityPanel
    review_banner: Banner
    act_auto: QAction
    act_undo: QAction
    act_redo: QAction
    _current: int | None
    _detail: DetailResult | None
    _detail_pending: bool
    _states: dict
    _records_seen: tuple[int, int] | None
    _group_said = False  # the review box describes a selected group
    decisionRecorded: Any  # Signal(int), declared on the window
    status: Callable[[str], None]
    set_current_row: Callable[[int], None]
    _nav_rows: Callable[[], list[int]]
    _refresh_panel_from_row: Callable[[], None]
    _update_sign_state: Callable[[], None]
    _show_case_title: Callable[[], None]

    # -- the keys -------------------------------------------------------------------------------
    def confirm_call(self) -> None:
        if self._current is None:
            return
        if (group := self.selected_group()) is not None:
            self._decide_group(group, "confirmed", lambda item, now: (
                None if item.reviewed_id is not None or (call := self.model.ai_call_of(item)) is None
                else ReviewState(call, now.flagged, now.comment)))
            return
        call = self.model.ai_call_of(self.model.item(self._current))
        if call is None:
            failed = self.model.item(self._current).status == FAILED
            self.status("This file could not be classified: there is no AI call to confirm." if failed
                        else "This image has no AI call to confirm yet.")
            return
        self._decide(call, self.model.item(self._current).flagged, advance=True)

    def assign_index(self, index: int) -> None:
        if index >= len(self.model.class_ids):
            self.status(f"This model has {len(self.model.class_ids)} classes; key {index + 1} is not one of them.")
            return
        self.assign_class(self.model.class_ids[index])

    def assign_class(self, class_id: str) -> None:
        if self._current is None:
            return
        if (group := self.selected_group()) is not None:
            if failed := [self.model.item(r).name for r in group if self.model.item(r).status == FAILED]:
                self.status(f"{_names(failed)} could not be classified, so there is nothing to give a class to; "
                            "select without them. F flags them and C adds a comment.")
                return
            self._decide_group(group, f"given {self._class_words(class_id)}",
                               lambda item, now: ReviewState(class_id, now.flagged, now.comment))
            return
        self._decide(class_id, self.model.item(self._current).flagged, advance=True)

    def toggle_flag(self) -> None:
        if self._current is None:
            return
        if (group := self.selected_group()) is not None:
            flag = not all(self.model.item(r).flagged for r in group)
            self._decide_group(group, "flagged for pathologist" if flag else "unflagged",
                               lambda item, now: ReviewState(now.reviewed_id, flag, now.comment))
            return
        item = self.model.item(self._current)
        self._decide(item.reviewed_id, not item.flagged, advance=False)

    def clear_decision(self) -> None:
        if self._current is None:
            return
        if (group := self.selected_group()) is not None:
            self._decide_group(group, "cleared", lambda item, now: ReviewState(None, False, now.comment))
            return
        self._decide(None, False, advance=False)

    def edit_comment(self) -> None:
        if self._current is None:
            return
        if (group := self.selected_group()) is not None:
            comments = {self.model.item(r).comment for r in group}
            own = sum(bool(self.model.item(r).comment) for r in group) if len(comments) > 1 else 0
            replaces = f" {own} of them have a comment of their own; this replaces it." if own else ""
            text, ok = ask_text(self, "Comment", f"Comment on the {len(group)} selected images.{replaces}",
                                comments.pop() if len(comments) == 1 else "", self.review.recent_comments())
            if ok:
                self._decide_group(group, "commented on",
                                   lambda item, now: ReviewState(now.reviewed_id, now.flagged, text.strip()))
            return
        item = self.model.item(self._current)
        text, ok = ask_text(self, "Comment", f"Comment on {item.name}:", item.comment,
                            self.review.recent_comments())  # typing offers the lab's recent comments
        if ok:
            self._decide(item.reviewed_id, item.flagged, advance=False, comment=text.strip())

    # -- one image ------------------------------------------------------------------------------
    def _decide(self, reviewed_id: str | None, flagged: bool, *, advance: bool, comment: str | None = None) -> None:
        row = self._current
        if row is None:
            return
        item = self.model.item(row)
        if item.image_hash is None:
            self.status("Wait until this image has been read before reviewing it.")
            return
        if reviewed_id is not None and reviewed_id != item.reviewed_id:
            if self._detail_pending and row == self._current:
                self.status(f"Wait until {item.name} is on screen: a class is given to the image you see.")
                return
            why = ("could not be classified" if item.status == FAILED
                   else "cannot be shown now (moved, deleted or unreadable since it was classified)"
                   if self._shown_unopened(row) else None)
            if why:
                self.status(
                    f"{item.name} {why}, so there is nothing on screen to give a class to: "
                    "fix or replace the file and open the folder again. F flags it and C adds a comment."
                )
                return
        before = _state_of(item)
        after = ReviewState(reviewed_id, flagged, item.comment if comment is None else comment)
        order = self._nav_rows()  # before the decision: a filter may hide the row once it is decided
        if not self._write_reviews([row], [after]):
            return
        self.history.record(DecisionChange(item.path, item.image_hash, before, after))
        self._update_undo_actions()
        self.status(f"Saved: {self._state_words(item.path, after)}")
        if advance and self.act_auto.isChecked():
            following = order[order.index(row) + 1 :] if row in order else []
            if following:
                self.set_current_row(following[0])
            else:
                self.status(f"Saved {item.name}; that was the last image.")

    def _shown_unopened(self, row: int) -> bool:
        """The row is on screen and its image could not be opened (the file went away or broke after it was
        classified): a class given now would be given unseen."""
        detail = self._detail
        return (row == self._current and not self._detail_pending and detail is not None
                and detail.path == self.model.item(row).path and detail.image is None)

    # -- a gallery group --------------------------------------------------------------------------
    def selected_group(self) -> list[int] | None:
        """The rows of the thumbnails selected together in the gallery (one class group), when more than one:
        the keys then decide them all at once, as a morphology analyser's "accept this class" does."""
        if self.tabs.currentWidget() is not self.gallery:
            return None
        rows = self.gallery.selected_rows()
        return rows if len(rows) > 1 else None

    def say_group(self) -> None:
        """Show in the review box what the keys do to the thumbnails selected together (when that changes)."""
        group = self.selected_group()
        if group is None and not self._group_said:
            return  # navigation moves a one-thumbnail selection on every step: nothing to say then
        self._group_said = group is not None
        self._refresh_panel_from_row()
        if group is not None:
            self.status(f"{len(group)} selected in {self.gallery.selected_section()}: the review keys decide all "
                        f"{len(group)} at once.")

    def group_text(self, group: list[int]) -> str:
        """The review box's words for a group: how many, the least sure call and the notes among them (a group
        hides no doubt a single image would show), and what each key does to them."""
        items = [self.model.item(r) for r in group]
        to_review = sum(i.reviewed_id is None for i in items)
        scored = [(float(i.probabilities.max()), i.name) for i in items if i.probabilities is not None]
        least = f" Least sure AI call: {format_percent(min(scored)[0])} ({min(scored)[1]})." if scored else ""
        noted = sum(bool(i.warnings) for i in items)
        notes = f" {noted} of them with a ⚠ note." if noted else ""
        return (f"Selected together: {len(group)} in {self.gallery.selected_section()} ({to_review} not reviewed "
                f"yet).{least}{notes} Enter confirms the AI call of those not reviewed yet; 1–9 or 0 gives all "
                f"{len(group)} that class; F flags them, C comments on them, Backspace clears them; Ctrl+Z undoes "
                "the group.")

    def _decide_group(self, rows: list[int], done: str,
                      new_state: Callable[[ImageItem, ReviewState], ReviewState | None]) -> None:
        """Record ``new_state(item, its state now)`` for every selected image (None: leave it) in one
        transaction, as one undo step. Refused while a selected thumbnail is not on screen: a group is
        decided on the thumbnails the technician sees."""
        items = [self.model.item(r) for r in rows]
        unseen = [i.name for i in items if i.image_hash is None or not self.thumbnails.shown(i.path)]
        if unseen:
            one = len(unseen) == 1
            self.status(f"Not recorded: {_names(unseen)} {'has' if one else 'have'} not been shown as "
                        f"{'a thumbnail' if one else 'thumbnails'} yet (out of sight, still loading, or unreadable). "
                        "A group is decided on the thumbnails you have seen: scroll to them, or select without them.")
            return
        changes: list[tuple[int, DecisionChange]] = []
        hashes: set[str] = set()
        for row, item in zip(rows, items, strict=True):
            before = _state_of(item)
            after = new_state(item, before)
            if after is not None and after != before and item.image_hash not in hashes:
                hashes.add(item.image_hash)  # two files with the same content share one record
                changes.append((row, DecisionChange(item.path, item.image_hash, before, after)))
        if not changes:
            self.status(f"Nothing to change: the {len(rows)} selected images are already "
                        f"{'decided' if done == 'confirmed' else done}.")
            return
        if not self._write_reviews([r for r, _ in changes], [c.after for _, c in changes]):
            return
        self.history.record(*(c for _, c in changes))
        self._update_undo_actions()
        decided = sum(item.image_hash in hashes for item in items)  # an identical copy goes with its first file
        left = len(rows) - decided
        self.status(f"Saved: {decided} {'image' if decided == 1 else 'images'} {done}"
                    + (f"; {left} left as they were" if left else "")
                    + ". Ctrl+Z undoes the group at once.")

    # -- the records ------------------------------------------------------------------------------
    def _write_reviews(self, rows: list[int], states: list[ReviewState]) -> bool:
        """Record the images' review states in one transaction (committed before they show; all or none);
        False, with the reason shown, if not.

        The store refuses it when an image was decided in another window since this one last showed it:
        the rows then show what is on record instead, and the technician decides again, knowing it."""
        items = [self.model.item(r) for r in rows]
        try:
            self.review.decide([
                DecisionRequest(item.path, item.image_hash, state.reviewed_id, state.flagged, state.comment,
                                item.decision_count)
                for item, state in zip(items, states, strict=True)
            ])
        except ReviewConflictError as exc:
            last = exc.latest
            row = next(r for r, item in zip(rows, items, strict=True) if item.image_hash == last.image_hash)
            self._take_record(row, last.reviewed_id, last.flagged, last.comment, last.user, exc.count)
            if len(rows) > 1:
                self._states = self.review.states()
                for other in rows:
                    self._take_newer_state(other)
            if self._current in rows:
                self._refresh_panel_from_row()
            self._update_sign_state()
            if len(rows) == 1:
                now = self._state_words(items[0].path, ReviewState(last.reviewed_id, last.flagged, last.comment))
                self.status(f"Not recorded: {exc}. It now reads {now}; look at it and decide again.")
            else:
                self.status(f"Not recorded, none of the {len(rows)}: {exc}. The selected images now show what is "
                            "on record; look at them and decide again.")
            return False
        except Exception as exc:  # noqa: BLE001 - shown, never swallowed; the decision is NOT applied
            if self.review.error:
                what = "decision was" if len(rows) == 1 else f"{len(rows)} decisions were"
                self.review_banner.show_text(f"{self.review.error} The {what} not recorded.")
            self.status(f"Not recorded: {exc}")
            return False
        self._take_records(rows, [(state, item.decision_count + 1) for item, state in zip(items, states, strict=True)],
                           self.review.user)
        if self._records_seen is not None:
            self._records_seen = (self._records_seen[0] + len(rows), self._records_seen[1])
        if self._current in rows:
            self._refresh_panel_from_row()
        self._update_sign_state()
        for row in rows:
            self.decisionRecorded.emit(row)
        return True

    def _take_record(self, row: int, reviewed_id: str | None, flagged: bool, comment: str | None,
                     reviewer: str | None, count: int) -> None:
        """Show what the review records say of this row: its latest decision, ``count`` decisions in all."""
        self._take_records([row], [(ReviewState(reviewed_id, bool(flagged), comment or ""), count)], reviewer)

    def _take_records(self, rows: list[int], records: list[tuple[ReviewState, int]], reviewer: str | None) -> None:
        """Show what the records say of these rows (state, decisions in all) on every row of the same content:
        an identical copy of a file is one record. Every row first, then one change for the views: showing one
        reads the records, which already hold the whole group."""
        shown_rows, reviews = [], []
        for row, (state, count) in zip(rows, records, strict=True):
            for twin in self.model.rows_with_content(self.model.item(row).image_hash) or [row]:
                other = self.model.item(twin)
                other.comment, other.decision_count = state.comment, count
                shown_rows.append(twin)
                reviews.append((state.reviewed_id, state.flagged))
        self.model.set_reviews(shown_rows, reviews, reviewer)

    def _take_newer_state(self, row: int) -> bool:
        """Show the row's state as last read from the records (``_states``) if it has more decisions than the
        row has seen; False when the row is as new or newer (decided here since) or its content is unknown."""
        item = self.model.item(row)
        state = self._states.get(item.image_hash) if item.image_hash else None
        if state is None or state.decision_count <= item.decision_count:
            return False
        self._take_record(row, state.reviewed_id, state.flagged, state.comment, state.reviewer, state.decision_count)
        return True

    def _sync_with_records(self) -> None:
        """Take what another window recorded on this case since this one last looked (decisions, a
        sign-off or reopening, case details), so every view shows what is on record. Run when the window
        is activated; costs one query when nothing changed."""
        counts = self.review.record_counts()
        if counts is None or self._records_seen is None or counts == self._records_seen:
            return
        seen, self._records_seen = self._records_seen, counts
        said = []
        if counts[0] != seen[0]:
            self._states = self.review.states()
            taken = sum(self._take_newer_state(row) for row in range(self.model.rowCount()))
            if taken:
                self._refresh_panel_from_row()
                said.append(f"{taken} image(s) were decided")
        if counts[1] != seen[1]:
            said.append("the sign-off or case details changed")
            self._show_case_title()
        self._update_sign_state()
        if said:
            self.status(f"In another window on this case, {' and '.join(said)}; this window now shows the records.")

    # -- words ----------------------------------------------------------------------------------
    def _class_words(self, class_id: str | None) -> str:
        """A reviewed class as people read it (another installed model's name where it came from there)."""
        return class_name(class_id, self.model.class_ids, self.model.labels) or "no class"

    def _state_words(self, path: Path, state: ReviewState) -> str:
        flag = " · flagged for pathologist" if state.flagged else ""
        return f"{self.model.name_of(path)} → {self._class_words(state.reviewed_id)}{flag}"

    def _step_words(self, step: DecisionStep, *, before: bool) -> str:
        """A step as the undo and redo messages name it: the image's state, or the group's images."""
        if len(step) == 1:
            return self._state_words(step[0].path, step[0].before if before else step[0].after)
        return f"the group of {len(step)} images ({_names([self.model.name_of(c.path) for c in step])})"

    # -- undo and redo ----------------------------------------------------------------------------
    def undo_decision(self) -> None:
        """Put back the state the last decision (or group) replaced, and show that image (the group's first)."""
        step = self.history.to_undo()
        if step is None:
            self.status("Nothing to undo.")
        elif self._restore(step, undo=True):
            self.history.undone()
            self.status(f"Undone, back to: {self._step_words(step, before=True)}")
        self._update_undo_actions()

    def redo_decision(self) -> None:
        step = self.history.to_redo()
        if step is None:
            self.status("Nothing to redo.")
        elif self._restore(step, undo=False):
            self.history.redone()
            self.status(f"Redone: {self._step_words(step, before=False)}")
        self._update_undo_actions()

    def _restore(self, step: DecisionStep, *, undo: bool) -> bool:
        """Write each image's state from before the step (``undo``) or after it, if every image still has
        what this window left it with: a decision made since in another window is not overwritten."""
        rows = []
        for change in step:
            row = self.model.row_of(change.path)
            if row is None or self.model.item(row).image_hash != change.image_hash:
                self.history.forget(step)
                kept = "its decision stays as it is" if len(step) == 1 else "the group's decisions stay as they are"
                self.status(f"{self.model.name_of(change.path)} has changed on disk or is no longer open; {kept}.")
                return False
            rows.append(row)
        self.set_current_row(rows[0])
        for row, change in zip(rows, step, strict=True):
            item = self.model.item(row)
            now = _state_of(item)
            if now != (change.after if undo else change.before):
                self.history.forget(step)
                by = f" (by {item.reviewer})" if item.reviewer else ""
                self.status(f"Left as {'it is' if len(step) == 1 else 'they are'}: "
                            f"{self._state_words(item.path, now)}{by} was decided in another window since.")
                return False
        return self._write_reviews(rows, [c.before if undo else c.after for c in step])

    def _update_undo_actions(self) -> None:
        undo, redo = self.history.to_undo(), self.history.to_redo()
        self.act_undo.setEnabled(undo is not None)
        self.act_redo.setEnabled(redo is not None)
        self.act_undo.setStatusTip(f"Back to: {self._step_words(undo, before=True)}" if undo else "")
        self.act_redo.setStatusTip(f"Again: {self._step_words(redo, before=False)}" if redo else "")


def _state_of(item: ImageItem) -> ReviewState:
    return ReviewState(item.reviewed_id, item.flagged, item.comment)


def _names(names: list[str]) -> str:
    """File names for a message: the first few, and how many more."""
    shown = ", ".join(names[:GROUP_NAMES_SHOWN])
    return shown if len(names) <= GROUP_NAMES_SHOWN else f"{shown} and {len(names) - GROUP_NAMES_SHOWN} more"
