"""The main window: wires the views, the workers and the review store together.

Layout: images (table or gallery) on the left, the image with its heatmap in the middle, the
call, probabilities and the live differential on the right. Every long task runs in the Engine's
worker threads; this class only reacts to their signals, so the window never freezes.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QSize, QStandardPaths, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.about import show_about
from gui.augment_offer import (
    Augmenter,
    AugmentOfferBar,
    AugmentOutcome,
    is_one_score_refusal,
    parse_two_labels,
    wants_gradcam_offer,
)
from gui.batch_model import BatchTableModel
from gui.batch_panel import BatchPanel
from gui.calls import (
    UNIDENTIFIED_ID,
    format_percent,
    is_uncertain,
    known_class_names,
    remember_class_names,
)
from gui.case_details import CaseDetailsDialog
from gui.decision_history import DecisionHistory
from gui.differential_panel import DifferentialPanel
from gui.engine import Engine
from gui.gallery import GalleryView
from gui.heatmap_bar import StatusCaption, StatusLine
from gui.items import DONE, FAILED, QUEUED, ItemResult, ModelInfo, names_folder, same_file_notes
from gui.model_card import ModelCardDialog, model_status_text
from gui.model_check import ModelCheckDialog, ask_folder_classes, folders_needing_a_class
from gui.model_picker import ModelPicker
from gui.model_suggestion import ModelSuggester, ModelSuggestionBar
from gui.plain_dialogs import ask, ask_text, tell
from gui.probability_panel import ProbabilityPanel
from gui.progress_bar import SlimProgressBar
from gui.report_action import ReportExporter, ReportJob, ReportOutcome, ReportTargets, default_report_name
from gui.review_actions import ReviewActions
from gui.review_bridge import ReviewBridge, case_folder
from gui.settings import HEATMAP_COLOURS, AppSettings
from gui.thumbnails import ThumbnailLoader
from gui.view_export import captioned, save_png
from gui.window_parts import (
    SIDE_MIN_WIDTH,
    Banner,
    ImagePane,
    TypingGuard,
    duration_text,
    pane_widths,
    welcome_text,
)
from gui.workers import DetailResult
from hemalens import RESEARCH_USE_STATEMENT, __version__
from inference.errors import HemaLensError
from inference.familiarity import UNFAMILIAR_NOTE, folder_unlike_warning
from inference.model_figures import call_records
from review.records import readable_time

REPORT_FAILED = "The report was not written"
NOT_FOUND = "Not found"
SIGNED_BANNER = "This case was signed by"
# From this many pixels on (a 5 MP camera frame), the next image is loaded while one is looked at: a 20 MP photo
# then shows 10-20 ms after Enter instead of 0.5 s. Smaller images show in about 20 ms anyway, and loading
# ahead made each Enter 1-3 ms slower (the worker and the window share Python's lock), measured here.
LOAD_AHEAD_PIXELS = 5_000_000
FRAME_ALLOWANCE = 16  # px a window manager's frame may add around the window
OPENING_NOTICE_MS = 150  # the image on screen is replaced by "Opening …" when the next one takes longer
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp);;All files (*)"


class MainWindow(ReviewActions, QMainWindow):
    """The HemaLens window. ``open_paths`` and ``load_model`` are the programmatic entry points."""

    batchFinished = Signal(bool)  # cancelled
    modelReady = Signal(object)  # ModelInfo
    detailShown = Signal(int)  # source row whose image and heatmap are on screen
    decisionRecorded = Signal(int)  # source row
    reportExported = Signal(object)  # gui.report_action.ReportOutcome
    reportFailed = Signal(str)  # message shown in the error banner
    augmentFinished = Signal(object)  # gui.augment_offer.AugmentOutcome
    augmentFailed = Signal(str)

    def __init__(self, settings: AppSettings | None = None, review: ReviewBridge | None = None) -> None:
        super().__init__()
        self.setWindowTitle("HemaLens")
        self.setAcceptDrops(True)
        self.settings = settings or AppSettings()
        self.review = review or ReviewBridge()
        self.engine = Engine(self)
        self.reports = ReportExporter(self)
        self.augmenter = Augmenter(self)
        self._offer_declined: set[str] = set()  # model SHA-256s whose Grad-CAM offer was declined or failed
        self._check_dialog: ModelCheckDialog | None = None
        self._augmented: AugmentOutcome | None = None  # the copy just made (its note stays while it is in use)
        self.suggester = ModelSuggester(self)
        self._suggestion_declined: set[tuple[str, str]] = set()  # (folder, model path) pairs answered "Not now"
        self.thumbnails = ThumbnailLoader(parent=self)
        self.model = BatchTableModel(self)
        self.model.set_thumbnail_getter(self.thumbnails.get)
        self.thumbnails.ready.connect(self.model.thumbnail_ready)
        self.model_info: ModelInfo | None = None
        self._sources: list[Path] = []
        self._names_folder: Path | None = None  # the list names files by their path under it
        self._current: int | None = None
        self._detail: DetailResult | None = None
        self._detail_pending = False
        self._opening_said = False
        self._heatmap_class: int | None = None
        self._states: dict = {}
        self._records_seen: tuple[int, int] | None = None  # the case's record counts when this window last synced
        self._batch_started = 0.0
        self._progress_shown = 0.0
        self._shown_once = False
        self._pending_open: tuple[list[Path], Path | None] | None = None  # (paths, case) opened too early
        self._loading_model: Path | None = None
        self.history = DecisionHistory()
        self._diff_timer = QTimer(self, singleShot=True, interval=150, timeout=self._update_differential)
        # The window's own timer (a bare single shot outlived a closed window and called into its deleted view).
        self._opening_timer = QTimer(self, singleShot=True, interval=OPENING_NOTICE_MS, timeout=self._say_opening)
        self._build_ui()
        self._build_actions()
        self._update_undo_actions()
        self._connect()
        self._restore_settings()
        self.batch_panel.table.setFocus()  # the review keys reach the images from the start, not the filter box

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        self.batch_panel = BatchPanel(self.model)
        self.gallery = GalleryView(self.model, self.batch_panel.proxy)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.batch_panel, "Table")
        self.tabs.addTab(self.gallery, "Gallery")
        images = QWidget()  # the filter bar over both views of the images
        il = QVBoxLayout(images)
        il.setContentsMargins(0, 0, 0, 0)
        il.addWidget(self.batch_panel.filter_bar)
        il.addWidget(self.tabs, 1)
        self.image_pane = ImagePane()
        self.image_view = self.image_pane.view
        self.heatmap_bar = self.image_pane.bar
        self.prob_panel = ProbabilityPanel()
        self.diff_panel = DifferentialPanel()
        side = QWidget()
        side.setObjectName("sidePanel")
        rl = QVBoxLayout(side)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.prob_panel)
        rl.addWidget(self.diff_panel)
        rl.addStretch(1)
        # On a short screen (768 px) eight classes plus the differential do not fit: scroll, never overlap.
        right = QScrollArea()
        right.setWidget(side)
        right.setWidgetResizable(True)
        right.setFrameShape(QFrame.Shape.NoFrame)
        right.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right.setMinimumWidth(SIDE_MIN_WIDTH)
        right.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a click on the panel took the arrows, which then scrolled it
        self.side_scroll = right
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(images)
        self.splitter.addWidget(self.image_pane)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([640, 700, 360])
        self.model_banner = Banner("warning")
        self.domain_banner = Banner("warning")
        self.review_banner = Banner("error")
        self.error_banner = Banner("error")
        self.augment_offer = AugmentOfferBar()
        self.model_offer = ModelSuggestionBar()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        for w in (self.model_banner, self.domain_banner, self.model_offer, self.augment_offer, self.review_banner,
                  self.error_banner):
            cl.addWidget(w)
        cl.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        # status bar
        self.status_label = StatusLine()
        self.status_label.setText("Ready")
        self.progress = SlimProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setVisible(False)
        self.eta_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.setToolTip("Stop classifying after the current image (Esc)")
        self.open_report_button = QPushButton("Open report")  # shown once a report is written: where it went
        self.open_report_button.setVisible(False)
        self._last_report: Path | None = None
        self.model_label = StatusCaption()
        self.model_label.set_caption("No model")
        self.reviewer_label = QLabel("")
        self.reviewer_label.setTextFormat(Qt.TextFormat.PlainText)  # a typed name, never markup
        self.reviewer_label.setToolTip("Recorded with every decision and sign-off (Review → Reviewer name…)")
        self.reviewer_label.setStyleSheet("padding: 0 10px;")
        self.research_label = QLabel("Research use only · not a diagnosis")
        self.research_label.setToolTip(RESEARCH_USE_STATEMENT)
        self.research_label.setStyleSheet("color: #8a5a00; font-weight: 600; padding: 0 6px;")
        sb = self.statusBar()
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.eta_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.open_report_button)
        sb.addPermanentWidget(self.reviewer_label)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.research_label)

    def _action(self, text: str, slot, shortcut: str | QKeySequence | list | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, list):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{text.replace('…', '')} ({action.shortcut().toString()})" if shortcut else text)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.act_open = a("Open images…", self.choose_images, QKeySequence.StandardKey.Open, "Open image files")
        self.act_open_folder = a("Open folder…", self.choose_folder, "Ctrl+Shift+O", "Open a folder (with subfolders)")
        self.act_save_view = a(
            "Save image with heatmap…", self.choose_view_file, QKeySequence.StandardKey.Save,
            "Save the image on screen with its heatmap and a caption (call, model) as PNG",
        )
        self.act_copy_view = a(
            "Copy image with heatmap", self.copy_view_image, "Ctrl+Shift+C",
            "Copy the image on screen with its heatmap and a caption to the clipboard",
        )
        self.act_quit = a("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_load_model = a("Load model…", self.choose_model_file, "Ctrl+M", "Load any ONNX classifier")
        self.act_model_card = a("Model card…", self.show_model_card, "Ctrl+I", "What this model is and how it measured")
        self.act_augment = a(
            "Make Grad-CAM ready…",
            self.make_gradcam_ready,
            None,
            "Add Grad-CAM to a copy of this model (original unchanged)",
        )
        self.act_augment.setEnabled(False)
        self.act_check = a("Check on labelled images…", self.check_model_on_folder, None,
                           "Measure the model in use on your own labelled images (one sub-folder per class)")
        self.act_fit = a("Fit to window", self.image_view.fit, "Ctrl+0")
        self.act_actual = a("Actual size (1:1)", self.image_view.actual_size, "Ctrl+1")
        self.act_zoom_in = a("Zoom in", lambda: self.image_view.zoom_by(1.25), ["Ctrl+=", "Ctrl++"])
        self.act_zoom_out = a("Zoom out", lambda: self.image_view.zoom_by(0.8), "Ctrl+-")
        self.act_heatmap = a("Show heatmap", self.toggle_heatmap, "H", "Show or hide the heatmap overlay")
        self.act_heatmap.setCheckable(True)
        self.act_heatmap.setChecked(True)
        self.act_table = a("Table", lambda: self.tabs.setCurrentIndex(0), "Ctrl+T")
        self.act_gallery = a("Gallery", lambda: self.tabs.setCurrentIndex(1), "Ctrl+G")
        self.act_filter = a("Filter…", self._focus_filter, "Ctrl+F")
        self.act_next = a("Next image", lambda: self.step(1), [QKeySequence.StandardKey.MoveToNextPage, "Space"])
        self.act_prev = a(
            "Previous image", lambda: self.step(-1), [QKeySequence.StandardKey.MoveToPreviousPage, "Shift+Space"]
        )
        self.act_next_todo = a("Next to review", self.next_to_review, "N", "Jump to the next image not reviewed yet")
        self.act_confirm = a("Confirm AI call", self.confirm_call, ["Return", "Enter"], "Agree with the AI call")
        self.act_flag = a("Flag for pathologist", self.toggle_flag, "F", "Flag this image for a pathologist")
        self.act_clear = a("Clear decision", self.clear_decision, "Backspace")
        self.act_comment = a("Comment…", self.edit_comment, "C", "Add a comment to this image's record")
        self.act_undo = a("Undo decision", self.undo_decision, "Ctrl+Z",
                          "Put back what the image had before the last decision")
        self.act_redo = a("Redo decision", self.redo_decision, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.act_unidentified = a("Unidentified", lambda: self.assign_class(UNIDENTIFIED_ID), "0")
        self.class_actions = [
            a(f"Class {k}", lambda _c=False, k=k: self.assign_index(k - 1), str(k)) for k in range(1, 10)
        ]
        # A held key repeats: held Enter would confirm image after image nobody looked at. Decisions take one
        # press each; moving through the images still repeats.
        for act in (self.act_confirm, *self.class_actions, self.act_unidentified, self.act_flag, self.act_clear,
                    self.act_undo, self.act_redo):
            act.setAutoRepeat(False)
        self.act_auto = a("Advance after decision", self._set_auto_advance)
        self.act_auto.setCheckable(True)
        self.act_cancel = a("Cancel classification", self.cancel_batch, "Escape")
        self.act_sign = a("Sign off case…", self.sign_case, None, "Sign the case when every image is reviewed")
        self.act_reopen = a("Reopen signed case…", self.reopen_case)
        self.act_details = a(
            "Case details…", self.edit_case_details, None, "The sample or slide ID and a note, printed on the report"
        )
        self.act_reviewer = a(
            "Reviewer name…", self.choose_reviewer_name, None, "The name recorded with your decisions and sign-offs"
        )
        self.act_export_report = a(
            "Export report…", self.choose_report_file, "Ctrl+E", "Write the case report as PDF, CSV and JSON"
        )
        self.act_shortcuts = a("Keyboard shortcuts", self.show_shortcuts, QKeySequence.StandardKey.HelpContents)
        self.act_about = a("About HemaLens", lambda: show_about(self, self.review.db_path))

        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_open, self.act_open_folder])
        self.recent_menu = m.addMenu("Open recent")
        m.addSeparator()
        m.addActions([self.act_save_view, self.act_copy_view])
        m.addAction(self.act_export_report)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&View")
        m.addActions([self.act_fit, self.act_actual, self.act_zoom_in, self.act_zoom_out])
        m.addSeparator()
        m.addActions([self.act_heatmap, self.act_table, self.act_gallery, self.act_filter])
        colours = m.addMenu("Heatmap colours")
        group = QActionGroup(self)
        self.colour_actions: list[QAction] = []
        for name, (words, _hottest) in HEATMAP_COLOURS.items():
            action = QAction(words, self, checkable=True)
            action.setData(name)
            action.triggered.connect(lambda _checked=False, name=name: self.set_heatmap_colours(name))
            group.addAction(action)
            colours.addAction(action)
            self.colour_actions.append(action)
        m = mb.addMenu("&Model")
        m.addActions([self.act_load_model, self.act_model_card, self.act_check, self.act_augment])
        m = self.review_menu = mb.addMenu("&Review")
        m.addActions([self.act_next, self.act_prev, self.act_next_todo])
        m.addSeparator()
        m.addActions(
            [
                self.act_confirm,
                *self.class_actions,
                self.act_unidentified,
                self.act_flag,
                self.act_comment,
                self.act_clear,
            ]
        )
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions([self.act_auto, self.act_cancel])
        m.addSeparator()
        m.addActions([self.act_details, self.act_sign, self.act_reopen, self.act_export_report])
        m.addSeparator()
        m.addAction(self.act_reviewer)
        m = mb.addMenu("&Help")
        m.addActions([self.act_shortcuts, self.act_about])

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.addActions([self.act_open, self.act_open_folder])
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        self.picker = ModelPicker()
        tb.addWidget(self.picker)
        tb.addAction(self.act_model_card)
        tb.addSeparator()
        tb.addActions([self.act_fit, self.act_actual, self.act_heatmap])
        tb.addSeparator()
        tb.addActions([self.act_sign, self.act_export_report])

    def _connect(self) -> None:
        self._typing_guard = TypingGuard(self._focus_review, self)
        for box in (self.batch_panel.filter_text, self.prob_panel.threshold):
            box.installEventFilter(self._typing_guard)
        e = self.engine
        e.modelLoaded.connect(self._on_model_loaded)
        e.modelFailed.connect(self._on_model_failed)
        e.listed.connect(self._on_listed)
        e.results.connect(self._on_results)
        e.progress.connect(self._on_progress)
        e.batchFinished.connect(self._on_batch_finished)
        e.detailReady.connect(self._on_detail)
        self.picker.modelChosen.connect(self.load_model)
        self.picker.modelChosen.connect(lambda _p: self._focus_review())  # Down after a choice: the next image
        self.picker.loadRequested.connect(self.choose_model_file)
        self.batch_panel.currentRowChanged.connect(self.set_current_row)
        self.batch_panel.table.stepRequested.connect(self.step)
        self.gallery.currentRowChanged.connect(self.set_current_row)
        self.gallery.groupChanged.connect(self.say_group)
        self.gallery.size_choice.currentIndexChanged.connect(
            lambda _i: self.settings.set_gallery_thumb(int(self.gallery.size_choice.currentData()))
        )
        self.tabs.currentChanged.connect(lambda _i: self.say_group())  # a group is a gallery's, not the table's
        # The keyboard follows into the page shown (on the tab bar, arrows would switch tabs back).
        self.tabs.currentChanged.connect(lambda _i: QTimer.singleShot(0, self._focus_review))
        self.image_pane.stepRequested.connect(self.step)
        self.prob_panel.classClicked.connect(self.show_heatmap_class)
        self.prob_panel.thresholdChanged.connect(self._on_threshold)
        self.heatmap_bar.visibleChanged.connect(self._set_heatmap_visible)
        self.heatmap_bar.opacityChanged.connect(self._on_opacity)
        self.cancel_button.clicked.connect(self.cancel_batch)
        self.open_report_button.clicked.connect(self.open_last_report)
        self.reports.finished.connect(self._on_report_exported)
        self.augment_offer.accepted.connect(self._accept_augment_offer)
        self.augment_offer.dismissed.connect(self._decline_augment_offer)
        self.augmenter.finished.connect(self._on_augmented)
        self.augmenter.failed.connect(self._on_augment_failed)
        self.suggester.found.connect(self._on_model_fit)
        self.model_offer.accepted.connect(self.load_model)
        self.model_offer.dismissed.connect(self._decline_model_offer)
        self.reports.failed.connect(self._on_report_failed)
        self.model.differentialChanged.connect(self._schedule_differential)

    def _first_start_size(self) -> QSize:
        """1500x920, or on a smaller screen its width (less a frame) and 90 % of its height: a 1366x768 laptop
        must still show the status bar, and the table needs the width for its Reviewed and Flag columns."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return QSize(1500, 920)
        room = screen.availableGeometry().size()
        return QSize(min(1500, room.width() - FRAME_ALLOWANCE), min(920, int(room.height() * 0.9)))

    def _restore_settings(self) -> None:
        s = self.settings
        if (geometry := s.geometry()) is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(self._first_start_size())
        if (state := s.window_state()) is not None:
            self.restoreState(state)
        self.heatmap_bar.set_opacity(s.opacity())
        self.image_view.set_opacity(s.opacity())
        self.prob_panel.set_threshold(s.threshold())
        self.model.set_threshold(s.threshold())
        self._set_heatmap_visible(s.heatmap_visible())
        self.act_auto.setChecked(s.auto_advance())
        self.gallery.size_choice.setCurrentIndex(max(0, self.gallery.size_choice.findData(s.gallery_thumb())))
        self.review.set_reviewer_name(s.reviewer_name())
        self._show_reviewer()
        self._rebuild_recent_menu()
        self._show_heatmap_colours(s.heatmap_colours())

    # ------------------------------------------------------------------ models
    def start(self, paths: list[str] | None = None) -> None:
        """Pick the remembered (or first) model and open ``paths``; call once after showing."""
        self.review_banner.show_text(self.review.open_store())
        remembered = self.settings.model_path()
        extra = [remembered] if remembered is not None else []
        problems = self.picker.refresh(extra, remembered)
        remember_class_names(self.picker.class_names)
        if problems:
            self.status("Some model files could not be read: " + "; ".join(f"{p.name}: {r}" for p, r in problems))
        choice = remembered if remembered is not None and remembered.is_file() else None
        if choice is None and self.picker.model_paths():
            choice = self.picker.model_paths()[0]
        if choice is not None:
            self.load_model(choice)
        else:
            self.model_banner.show_text(
                "No model is installed yet. Use Model → Load model… (Ctrl+M) to open an ONNX classifier."
            )
        if paths:
            self.open_paths([Path(p) for p in paths])

    def load_model(self, path: Path) -> None:
        """Load a model on the worker thread; when ready, everything open is classified again."""
        path = Path(path)
        self._loading_model = path
        self.engine.load_model(path)
        self._hide_progress()
        self.status(f"Loading model {path.name}…")

    def choose_model_file(self) -> None:
        start = str(self.settings.model_path().parent) if self.settings.model_path() else ""
        name, _ = QFileDialog.getOpenFileName(self, "Load an ONNX model", start, "ONNX models (*.onnx);;All files (*)")
        if name:
            self.load_model(Path(name))
        else:
            self.picker.select_path(self.model_info.path if self.model_info else None)

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self._loading_model = None
        self.settings.set_model_path(info.path)
        self.picker.select_path(info.path)
        status = model_status_text(info.spec)
        self.model_label.set_caption(html.escape(status), essential=status.split(" (", 1)[0])  # keeps the accuracy
        self.model_label.setToolTip(
            f"{model_status_text(info.spec)}\n{info.path}\nSHA-256 {info.sha256}\n"
            f"Heatmap: {info.cam_method or 'none'}\n"
            f"Intended use: {info.spec.provenance.intended_use or 'not stated by the model'}"
        )
        if info.assumed:
            notes = " ".join(info.spec.notes)
            what = ("preprocessing and class names are" if any(n.startswith("Class names") for n in info.spec.notes)
                    else "preprocessing is")
            self.model_banner.show_text(f"⚠ {info.name} has no HemaLens metadata: its {what} assumed, so its calls may "
                                        f"be wrong. {notes}")
        else:
            self.model_banner.show_text(None)
        if not self.error_banner.text().startswith(NOT_FOUND):  # paths missing from this open stay in view
            self.error_banner.show_text(None)
        self._update_augment_offer()
        self.model.set_classes(info.class_ids, info.labels)
        self.prob_panel.set_call_records(call_records(info.spec.provenance.metrics or {}, list(info.labels)))
        self.batch_panel.set_classes(info.class_ids, info.labels)
        self.gallery.rebuild(info.class_ids, info.labels)
        self._retitle_class_actions()
        self.status(f"Model {info.name} ready ({', '.join(info.providers)}).")
        self.modelReady.emit(info)
        if self._pending_open is not None:
            pending, self._pending_open = self._pending_open, None
            self.open_paths(*pending)
        elif self.model.rowCount():
            self._start_batch(paths=[item.path for item in self.model.items()])
            if self._current is not None:
                self._request_detail(self._current)
        else:
            self.image_view.show_message(welcome_text(info.name, self.picker.descriptions))

    def _on_model_failed(self, path: Path, message: str) -> None:
        self._loading_model = None
        self.status("Model not loaded.")
        if is_one_score_refusal(message) and not self.augmenter.busy:
            self.augment_offer.offer_two_classes(Path(path))  # says why it did not load, and the way out
            self.augmenter.warm_up()
        else:
            self.error_banner.show_text(f"Could not load the model {Path(path).name}: {message}")
        self.picker.select_path(self.model_info.path if self.model_info else None)
        if self._pending_open is not None and self.model_info is None:
            pending, self._pending_open = self._pending_open, None
            self.open_paths(*pending)

    # ------------------------------------------------------------------ Grad-CAM for custom models
    def _update_augment_offer(self) -> None:
        from inference.registry import bundled_models_dir

        info = self.model_info
        self.act_augment.setEnabled(
            info is not None and not self.augmenter.busy and wants_gradcam_offer(info, bundled_models_dir())
        )
        if self.augmenter.busy:
            return  # the strip shows the work in progress
        done = self._augmented
        if done is not None and info is not None and Path(info.path) in (done.path, done.source):
            self.augment_offer.show_done(done, in_use=Path(info.path) == done.path)  # the note, not a new offer
            return
        self._augmented = None
        show = info is not None and info.sha256 not in self._offer_declined
        if show and wants_gradcam_offer(info, bundled_models_dir()):
            self.augment_offer.offer(info)
            self.augmenter.warm_up()
        else:
            self.augment_offer.setVisible(False)

    def make_gradcam_ready(self) -> bool:
        """Write a Grad-CAM-ready copy of the loaded model into the user's model folder, then load it."""
        from inference.registry import user_models_dir

        info = self.model_info
        if info is None or self.augmenter.busy:
            return False
        folder = user_models_dir()
        self.augmenter.start(info.path, folder)
        self.augment_offer.offer(info)  # also when started from the Model menu after "Not now"
        self.augment_offer.set_working(True)
        self.act_augment.setEnabled(False)
        self.status(f"Adding Grad-CAM to a copy of {info.path.name} in {folder}…")
        return True

    def _accept_augment_offer(self) -> None:
        if self.augment_offer.one_score is not None:
            self.make_two_class_copy(self.augment_offer.one_score)
        else:
            self.make_gradcam_ready()

    def make_two_class_copy(self, source: Path, labels: list[str] | None = None) -> bool:
        """Write a two-class copy of a refused one-score model into the user's model folder, then load it.

        ``labels`` (the class of a low score first) are asked for when not given.
        """
        from inference.registry import user_models_dir

        if self.augmenter.busy:
            return False
        text, hint = "", ""
        while labels is None:
            text, ok = ask_text(
                self, "Name the two classes",
                f"{hint}{Path(source).name} gives one score per image. Name its two classes, separated by a comma: "
                "first the class of a low score, then the class the score is for (e.g. other, blast).", text)
            if not ok:
                return False
            labels = parse_two_labels(text)
            hint = "Two different names, one comma between them. "
        folder = user_models_dir()
        self.augmenter.start(source, folder, labels)
        self.augment_offer.offer_two_classes(source)
        self.augment_offer.set_working(True)
        self.act_augment.setEnabled(False)
        self.status(f"Making a two-class copy of {Path(source).name} ({labels[0]}, {labels[1]}) in {folder}…")
        return True

    def _decline_augment_offer(self) -> None:
        if self.augment_offer.done:
            self._augmented = None  # "OK" on the result note
        elif self.augment_offer.one_score is not None:
            self.augment_offer.one_score = None  # the refused model is not in use: nothing to remember
        elif self.model_info is not None:
            self._offer_declined.add(self.model_info.sha256)
        self.augment_offer.setVisible(False)

    def _on_augmented(self, outcome: AugmentOutcome) -> None:
        self.picker.refresh([outcome.path], self.model_info.path if self.model_info else None)
        remember_class_names(self.picker.class_names)
        still_current = bool(outcome.labels) or (  # a two-class copy replaces the model that could not load
            self.model_info is not None and Path(self.model_info.path) == Path(outcome.source))
        self._augmented = outcome
        self.augment_offer.show_done(outcome, in_use=False)
        if not outcome.labels:  # a two-class copy's note stays until the copy is loaded: the model in use is another
            self._update_augment_offer()
        if still_current:
            self.load_model(outcome.path)  # switches to the copy and reclassifies what is open
        self.status(
            f"Saved the {outcome.what} {outcome.path.name}."
            + (" Loading it…" if still_current else " Pick it in the model list to use it.")
        )
        self.augmentFinished.emit(outcome)

    def _on_augment_failed(self, message: str) -> None:
        source = self.augmenter.source
        name = Path(source).name
        if self.augment_offer.one_score == Path(source):  # a refused yes/no model: nothing of it is in use
            self.augment_offer.one_score = None
            what, after, status = f"a two-class copy of {name}", "The original file is unchanged.", "Two-class copy"
        else:
            if self.model_info is not None and Path(self.model_info.path) == Path(source):
                self._offer_declined.add(self.model_info.sha256)  # do not offer what just failed again
            what, after, status = (f"{name} Grad-CAM ready", "The original model is unchanged and still in use.",
                                   "Grad-CAM copy")
        self.augment_offer.setVisible(False)
        self._update_augment_offer()
        self.error_banner.show_text(f"Could not make {what}: {message.rstrip('.')}. {after}")
        self.status(f"{status} not made.")
        self.augmentFailed.emit(message)

    def check_model_on_folder(self, folder: Path | None = None) -> ModelCheckDialog | None:
        """Model → Check on labelled images…: the model in use measured on a labelled folder (asked for when
        not given), in a dialog that shows progress and then the figures beside the model card's."""
        if self.model_info is None:
            self.status("No model is loaded.")
            return None
        if folder is None:
            start = self.settings.recent()[0] if self.settings.recent() else ""
            name = QFileDialog.getExistingDirectory(
                self, "A labelled folder: one sub-folder per class, named as the model's classes", start)
            if not name:
                return None
            folder = Path(name)
        mapping: dict[str, str] = {}
        unnamed = folders_needing_a_class(folder, self.model_info)
        if unnamed:
            chosen = ask_folder_classes(self, unnamed, list(self.model_info.labels))
            if chosen is None:
                return None
            mapping = chosen
        left_out = [name for name in unnamed if name not in mapping]  # the check skips them; the dialog names them
        if self._check_dialog is not None:  # one check at a time: a new folder replaces the one before
            self._check_dialog.reject()
            self._check_dialog.deleteLater()
        dialog = self._check_dialog = ModelCheckDialog(self.model_info, folder, self.model.threshold, mapping,
                                                       left_out, self)
        dialog.openWrongCalls.connect(self.open_paths)
        dialog.start()
        dialog.show()  # not modal: the review goes on while the check runs on its own thread
        return dialog

    def show_model_card(self) -> None:
        if self.model_info is None:
            self.status("No model is loaded.")
            return
        ModelCardDialog(self.model_info, self).exec()

    def _retitle_class_actions(self) -> None:
        labels = self.model.labels
        for k, action in enumerate(self.class_actions):
            action.setText(f"{k + 1}: {labels[k]}" if k < len(labels) else f"Class {k + 1}")
            # Only the model's classes in the menu; a key past them stays bound and says why it does nothing.
            self.review_menu.removeAction(action)
            if k < len(labels):
                self.review_menu.insertAction(self.act_unidentified, action)

    # ------------------------------------------------------------------ opening
    def choose_images(self) -> None:
        start = self.settings.recent()[0] if self.settings.recent() else ""
        names, _ = QFileDialog.getOpenFileNames(self, "Open images", start, IMAGE_FILTER)
        if names:
            self.open_paths([Path(n) for n in names])

    def choose_folder(self) -> None:
        start = self.settings.recent()[0] if self.settings.recent() else ""
        name = QFileDialog.getExistingDirectory(self, "Open a folder of images", start)
        if name:
            self.open_paths([Path(name)])

    def open_paths(self, paths: list[Path], case: Path | None = None) -> None:
        """Open images and/or folders (folders recursively) as one case and classify them.

        ``case``: the folder the case belongs to, when not the paths' common folder (the wrong calls of a model
        check belong to the labelled folder, whose sub-folders name their classes)."""
        paths = [Path(p) for p in paths]
        if self._loading_model is not None and self.model_info is None:
            self._pending_open = (paths, case)  # opened before the first model finished loading
            self.status("Waiting for the model to load…")
            return
        missing = [p for p in paths if not p.exists()]
        paths = [p for p in paths if p.exists()]
        if missing:
            # A banner, not the status line: the batch's own messages would replace it at once.
            self.error_banner.show_text(
                f"{NOT_FOUND}: " + ", ".join(str(p) for p in missing)
                + " (moved, renamed, or on a drive or network share that is not connected?)"
            )
        elif self.error_banner.text().startswith(NOT_FOUND):
            self.error_banner.show_text(None)
        if not paths:
            return
        self.engine.cancel_batch()
        self._sources = paths
        self.history.clear()  # the decisions were made on images that are no longer open
        self.open_report_button.setVisible(False)  # that report was about the case before
        self._update_undo_actions()
        sources = [Path(case)] if case is not None else paths
        folder = case_folder(sources)
        self._names_folder = names_folder(sources)
        error = self.review.open_case(folder)
        self.review_banner.show_text(error)
        self._states = self.review.states()
        self._records_seen = self.review.record_counts()
        self._update_sign_state()
        self.thumbnails.clear()
        self.model.set_paths([])
        self._current = None
        self._detail = None
        self.image_view.show_message("Listing images…")
        self.prob_panel.show_message("Listing images…")
        self.prob_panel.set_review_text("")  # the last folder's image is gone
        self.prob_panel.set_warnings([])
        self._show_case_title()
        recent = folder if len(paths) > 1 or paths[0].is_dir() else paths[0]
        self.settings.add_recent(recent)
        self._rebuild_recent_menu()
        self._start_batch(paths=None)

    def _start_batch(self, paths: list[Path] | None) -> None:
        self._batch_started = time.monotonic()
        self.domain_banner.show_text(None)
        self.model_offer.withdraw()
        if paths is not None:
            self.model.mark_status(range(self.model.rowCount()), QUEUED)
        self.engine.start_batch(self.model_info, self._sources, paths, recorder=self.review.recorder())
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.eta_label.setText("")
        self.status("Classifying…" if self.model_info else "Listing images…")

    def _on_listed(self, paths: list[Path]) -> None:
        self.model.set_paths(paths, self._names_folder)
        if not paths:
            where = ", ".join(p.name or str(p) for p in self._sources)
            self.image_view.show_message(f"No images found in {where}.")
            self.prob_panel.show_message("No images", "Supported: PNG, JPEG, TIFF, BMP, WebP.")
            return
        self.status(f"{len(paths)} images; classifying…")
        # The first image's detail load is its own event, after the table's first paint: one long
        # stall split in two short ones.
        QTimer.singleShot(0, self._show_first_if_none)

    def _show_first_if_none(self) -> None:
        if self._current is None and self.model.rowCount():
            self.set_current_row(0)

    def _on_results(self, results: list[ItemResult]) -> None:
        self.model.apply_results(results)
        for res in results:
            # The records as read at open are older than the row once it was decided here (a model switch
            # classifies the rows again): they must not put back what the row had before.
            self._take_newer_state(res.row)
            if res.row == self._current:
                self._refresh_panel_from_row()

    def _on_progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._progress_shown < 0.25:
            return  # a progress bar repaints on every value: a few updates a second are enough
        self._progress_shown = now
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        elapsed = time.monotonic() - self._batch_started
        if done and total > done:
            rate = done / max(elapsed, 1e-6)
            left = (total - done) / rate
            self.eta_label.setText(f"{done}/{total} · {rate:.1f}/s · about {duration_text(left)} left")
        else:
            self.eta_label.setText(f"{done}/{total}")

    def _on_batch_finished(self, cancelled: bool, message: str) -> None:
        self._hide_progress()
        items = self.model.items()
        counts = self.model.differential()
        failed, done, copies = counts.failed, counts.classified, self.model.copies()
        images = len(items) - copies  # an identical copy counts with its first file, as in the differential
        elapsed = time.monotonic() - self._batch_started
        if cancelled:
            self.model.mark_status([r for r, i in enumerate(items) if i.status == QUEUED], "Not classified")
            text = f"Cancelled: {done} of {images} classified."
        elif not items:
            text = "No images found in what was opened (supported: PNG, JPEG, TIFF, BMP, WebP)."
        else:
            text = f"Classified {done} of {images} images in {duration_text(elapsed)}"
            if copies:
                text += f" ({copies} more " + ("file is an identical copy)" if copies == 1 else
                                                "files are identical copies)")
            text += f"; {failed} could not be read (see the red rows)." if failed else "."
        if message:
            text += f" {message}"
            if "not being saved" in message:
                self.review_banner.show_text(message)
        self.status(text)
        warning = unlike_training_warning(items, self.model_info.name if self.model_info else "")
        self.domain_banner.show_text(warning)
        if warning and not cancelled:
            self._look_for_better_model([item.path for item in items if item.status == DONE])
        self._update_differential()
        self._update_sign_state()  # now that every image's content is known: new ones in a signed case
        self.batchFinished.emit(cancelled)

    def _look_for_better_model(self, classified: list[Path]) -> None:
        """Many images unlike the model's training images: ask, off the GUI thread, whether another model fits."""
        info = self.model_info
        key = self._suggestion_key(info.path) if info is not None else None
        if key is None or key in self._suggestion_declined:
            return
        others = [p for p in self.picker.model_paths() if p.resolve() != Path(info.path).resolve()]
        if others:
            self.suggester.start(classified, [Path(info.path), *others], Path(info.path), tag=key)

    def _suggestion_key(self, model_path: Path) -> tuple[str, str]:
        return (str(case_folder(self._sources)) if self._sources else "", str(Path(model_path).resolve()))

    def _on_model_fit(self, key: tuple[str, str], fit: object) -> None:
        info = self.model_info
        if fit is None or info is None or key != self._suggestion_key(info.path):
            return  # nothing fits better, or the folder or the model changed meanwhile
        if self.engine.batch_running or self._loading_model is not None or key in self._suggestion_declined:
            return
        self.model_offer.offer(fit, info.name)

    def _decline_model_offer(self) -> None:
        if self.model_info is not None:
            self._suggestion_declined.add(self._suggestion_key(self.model_info.path))
        self.model_offer.withdraw()

    def cancel_batch(self) -> None:
        if self.engine.batch_running:
            self.engine.cancel_batch()
            self._on_batch_finished(True, "")

    def _hide_progress(self) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.eta_label.setText("")

    # ------------------------------------------------------------------ navigation
    def _nav_rows(self) -> list[int]:
        if self.tabs.currentWidget() is self.gallery:
            return self.gallery.ordered_rows()
        return self.batch_panel.ordered_rows()

    def _nav_position(self) -> tuple[int | None, int, Callable[[int], int]]:
        if self.tabs.currentWidget() is self.gallery:
            rows = self.gallery.ordered_rows()
            return (rows.index(self._current) if self._current in rows else None), len(rows), rows.__getitem__
        return self.batch_panel.position_of(self._current)

    def step(self, delta: int) -> None:
        pos, count, row_at = self._nav_position()
        if count == 0:
            return
        if pos is None:
            self.set_current_row(row_at(0))
            return
        pos += delta
        if 0 <= pos < count:
            self.set_current_row(row_at(pos))
        else:
            self.status("First image." if pos < 0 else "Last image.")

    def next_to_review(self) -> None:
        rows = self._nav_rows()
        start = rows.index(self._current) + 1 if self._current in rows else 0
        for row in rows[start:] + rows[:start]:
            item = self.model.item(row)
            if item.reviewed_id is None and item.probabilities is not None:
                self.set_current_row(row)
                return
        self.status("Every classified image has been reviewed.")

    def current_row(self) -> int | None:
        return self._current

    def set_current_row(self, row: int) -> None:
        if not 0 <= row < self.model.rowCount():
            return
        if row != self._current:
            self._current = row
            self._heatmap_class = None
            self._detail = None
            self.batch_panel.select_source_row(row)
            self.gallery.select_source_row(row)
            self._refresh_panel_from_row()
            self._request_detail(row)
            self._opening_timer.start()  # restarted by each step: it speaks of the image current then

    def image_shown(self) -> bool:
        """Whether the image on screen is the current row's (its detail has come back): only then does a
        key give it a class."""
        return not self._detail_pending

    def _say_opening(self) -> None:
        """A slow image (a large scan, a network share) still loading: say so instead of leaving the
        previous image on screen beside this one's call, where it could be judged in its place."""
        row = self._current
        if row is not None and self._detail_pending:
            self.image_view.show_message(f"Opening {self.model.item(row).name}…")
            self.heatmap_bar.set_caption("")
            self.prob_panel.set_review_text("Opening the image: Enter and 1–9 decide once it is on screen.")
            self._opening_said = True

    def _request_detail(self, row: int) -> None:
        self._detail_pending = True
        self.engine.request_detail(self.model.item(row).path, self.model_info, self._heatmap_class)

    def _refresh_panel_from_row(self) -> None:
        """Show what the table knows now; the detail (image, heatmap) follows from the worker."""
        if self._current is None:
            return
        item = self.model.item(self._current)
        labels = self.model.labels
        unopened = self._shown_unopened(self._current)
        if unopened:
            self.prob_panel.show_message("Could not open the image", self._detail.error or "")
        elif item.probabilities is not None and len(labels) == len(item.probabilities):
            selected = self._heatmap_class if self._heatmap_class is not None else int(np.argmax(item.probabilities))
            self.prob_panel.show_probabilities(labels, item.probabilities, selected)
        elif item.status == FAILED:
            self.prob_panel.show_message("Could not classify", item.error or "")
        elif self.model_info is None:
            self.prob_panel.show_message("No model loaded", "Load a model to classify this image.")
        else:
            self.prob_panel.show_message("Classifying…", item.name)
        warnings = [] if unopened else [*item.notes, *same_file_notes(item)]  # an unopened image says so once
        if item.error and item.probabilities is not None and not unopened:  # a failed row says its error once
            warnings.insert(0, item.error)
        self.prob_panel.set_warnings(warnings)
        history = self.review.history(item.image_hash) if item.image_hash else []
        if len(history) > item.decision_count:  # decided in another window since this one last looked
            last = history[-1]
            self._take_record(self._current, last.reviewed_id, last.flagged, last.comment, last.user, len(history))
        group = self.selected_group()
        text = self._review_text(item, unopened, keys=group is None)
        if len(history) > 1:
            text += f"\n{len(history)} decisions on record (hover here for who decided what, when)"
        if group is not None:
            text += "\n" + self.group_text(group)
        self.prob_panel.set_review_text(text, self._history_text(history))

    def _history_text(self, history: list) -> str:
        """The image's audit trail in this case, newest first, for the review box's tooltip."""
        lines = []
        for d in reversed(history):
            what = self._class_words(d.reviewed_id)
            extra = ("; flagged" if d.flagged else "") + (f"; comment: {d.comment}" if d.comment else "")
            if d.decided_together:
                extra += f" (one of {d.decided_together} decided together in the gallery)"
            lines.append(f"{readable_time(d.decided_at)}  {d.user}: {what}{extra}")
        return "\n".join(lines)

    def _review_text(self, item, unopened: bool, *, keys: bool = True) -> str:
        parts = []
        if item.reviewed_id is not None:
            name = self._class_words(item.reviewed_id)
            verb = "Confirmed" if item.reviewed_id == self.model.ai_call_of(item) else "Reviewed as"
            parts.append(f"✓ {verb}: {name}" + (f" (by {item.reviewer})" if item.reviewer else ""))
        elif item.status == FAILED:
            parts.append("Nothing to review: no model could read this file. F flags it, C adds a comment.")
        elif unopened:
            parts.append("Nothing to review while the image cannot be shown. F flags it, C adds a comment.")
        else:
            parts.append("Not reviewed yet" + (": Enter confirms, 1–9 reassigns, 0 Unidentified" if keys else ""))
        if item.flagged:
            parts.append("⚑ Flagged for pathologist review")
        if item.comment:
            parts.append(f"Comment: {item.comment}")
        return "\n".join(parts)

    def _on_detail(self, result: DetailResult) -> None:
        if self._current is None:
            return
        item = self.model.item(self._current)
        if result.heatmap_only:
            if self._detail is not None:
                self._apply_heatmap(result)  # a class switch on the image already shown
            return
        if result.path != item.path:
            return
        self._detail_pending = False
        self._detail = result
        if self._opening_said:  # the review box said "Opening…": it says what the keys do again
            self._opening_said = False
            self._refresh_panel_from_row()
        if result.image is None:
            self.image_view.show_message(f"Cannot show this image.\n{result.error or ''}")
            self.heatmap_bar.set_caption("No heatmap: the image could not be opened")
            self._refresh_panel_from_row()  # says why, and that it gets no class unseen
            self.detailShown.emit(self._current)
            return
        self.image_view.set_image(result.image)
        pred = result.prediction
        if pred is not None:
            self.prob_panel.show_probabilities(pred.labels, pred.probabilities, result.class_index)
        same = same_file_notes(self.model.item(self._current)) if self._current is not None else []
        self.prob_panel.set_warnings([*([result.error] if result.error else []), *result.notes, *same])
        self._apply_heatmap(result)
        self.detailShown.emit(self._current)
        if result.image.width() * result.image.height() >= LOAD_AHEAD_PIXELS:
            self._load_next_ahead()

    def _load_next_ahead(self) -> None:
        """Have the image that Enter or ↓ leads to loaded while this one is looked at (a large photo then
        shows at once); the engine drops it as soon as anything else is asked for."""
        pos, count, row_at = self._nav_position()
        if pos is not None and pos + 1 < count and self.model_info is not None:
            self.engine.load_ahead(self.model.item(row_at(pos + 1)).path, self.model_info)

    def _apply_heatmap(self, result: DetailResult) -> None:
        pred = result.prediction
        if result.prediction is not None and self._detail is not None:
            self._detail = DetailResult(
                self._detail.token,
                self._detail.path,
                self._detail.image,
                pred,
                result.heatmap,
                result.class_index,
                self._detail.notes,
                self._detail.error,
            )
        self.image_view.set_heatmap(result.heatmap)
        if pred is None:
            self.heatmap_bar.set_caption("No prediction for this image" if self.model_info else "No model loaded")
        elif result.heatmap is None:
            self.heatmap_bar.set_caption("No heatmap available for this model")
        else:
            index = result.class_index if result.class_index is not None else pred.top_index
            label = pred.labels[index]
            # the class's own probability: a heatmap of a 2 % class, or of an uncertain call, must not read as a call
            share = float(pred.probabilities[index])
            doubt = ", uncertain" if index == pred.top_index and is_uncertain(share, self.model.threshold) else ""
            method = f" · {'Grad-CAM' if pred.cam_method == 'grad-cam' else pred.cam_method}" if pred.cam_method else ""
            unseen = f" · not seen: {pred.unseen_edges}" if pred.unseen_edges else ""
            self.heatmap_bar.set_caption(
                f"Heatmap for <b>{html.escape(label)}</b> ({format_percent(share)}{doubt}){method}{unseen}"
            )
            self.prob_panel.set_heatmap_class(result.class_index)

    def show_heatmap_class(self, index: int) -> None:
        """Show the heatmap of class ``index`` (clicked in the probability panel)."""
        self._heatmap_class = index
        self.prob_panel.set_heatmap_class(index)
        if not self.act_heatmap.isChecked():
            self._set_heatmap_visible(True)
        if self._detail is not None and self._detail.prediction is not None and not self._detail_pending:
            self.engine.request_heatmap(self._detail.prediction, index)
        elif self._current is not None:
            self._request_detail(self._current)

    def set_heatmap_colours(self, name: str) -> None:
        """View → Heatmap colours: the heatmap on screen, its legend, the next ones and the report's use ``name``."""
        self.settings.set_heatmap_colours(name)
        self._show_heatmap_colours(name)
        detail = self._detail
        if detail is not None and detail.prediction is not None and detail.class_index is not None and (
                not self._detail_pending):
            self.engine.request_heatmap(detail.prediction, detail.class_index)  # recoloured from the kept map
        elif self._current is not None:
            self._request_detail(self._current)

    def _show_heatmap_colours(self, name: str) -> None:
        self.engine.colormap = name
        for action in self.colour_actions:
            action.setChecked(action.data() == name)
        try:
            self.heatmap_bar.ensure_legend(name)
        except Exception as exc:  # noqa: BLE001 - the legend is decoration; never block the window
            self.status(f"Colour legend unavailable: {exc}")

    def heatmap_class(self) -> int | None:
        """The class whose heatmap is on screen (None when none is)."""
        return self._detail.class_index if self._detail is not None and self.image_view.has_heatmap() else None

    def _set_auto_advance(self, checked: bool) -> None:
        self.settings.set_auto_advance(checked)

    def _hashes(self) -> list[str]:
        return [i.image_hash for i in self.model.items() if i.image_hash]

    def _classified_hashes(self) -> list[str]:
        """What a sign-off covers: the images a model classified. Files that could not be read were
        never assessed; the sign-off dialog and the report name them instead."""
        return [i.image_hash for i in self.model.items() if i.image_hash and i.probabilities is not None]

    def _update_sign_state(self) -> None:
        signed = self.review.signed_by()
        self.act_sign.setEnabled(self.review.active and signed is None)
        self.act_reopen.setEnabled(signed is not None)
        if signed is None:
            if self.review_banner.text().startswith(SIGNED_BANNER):  # reopened (maybe in another window)
                self.review_banner.show_text(None)
        else:
            covered = self.review.signed_images()
            late = [h for h in self._classified_hashes() if h not in covered]
            by = f"{signed[0]} at {readable_time(signed[1])}"
            self.review_banner.show_text(
                f"{SIGNED_BANNER} {by}, but {len(late)} image(s) were added or "
                "changed since and are not covered by that sign-off: Review → Reopen signed case… to review them."
                if late else
                f"{SIGNED_BANNER} {by}. Review → Reopen signed case… to change it."
            )

    def sign_case(self) -> None:
        if self.engine.batch_running:
            self.status("Wait until classification has finished before signing.")
            return
        hashes = self._classified_hashes()
        ok, message = self.review.can_sign(hashes)
        if not ok:
            if "not reviewed" in message:
                message += "\nThe filter \u201cTo review\u201d lists them (N jumps to the next one)."
            if "Unidentified" in message:
                message += "\nThe class filter \u201cUnidentified\u201d lists the images still there."
            tell(self, "Sign off case", message)
            return
        failed = [i.name for i in self.model.items() if i.status == FAILED]
        if failed:
            shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
            message += (
                f"\n{len(failed)} file(s) could not be classified and are not part of what you sign: {shown}. "
                "The report lists them."
            )
        if sample := self.review.sample_id():
            message += f"\nSample / slide ID: {sample}."
        else:
            message += ("\nNo sample or slide ID is set, so the report names the case by its folder "
                        "(Review → Case details… sets one; answer No to set it first).")
        if ask(self, "Sign off case", f"{message}\nSign as {self.review.user}?"):
            try:
                self.review.sign(hashes)
            except Exception as exc:  # noqa: BLE001
                tell(self, "Sign off case", str(exc), warning=True)
            self._update_sign_state()

    def _show_case_title(self) -> None:
        """The window title names the sample (when set) and the folder: which case is on screen."""
        case = self.review.case
        if case is None:
            self.setWindowTitle("HemaLens")
            return
        folder = case.folder.name or str(case.folder)
        sample = self.review.sample_id()
        self.setWindowTitle(f"HemaLens — {sample} · {folder}" if sample else f"HemaLens — {folder}")

    def edit_case_details(self) -> None:
        if self.review.case is None:
            self.status("Open a folder first: the details belong to its case.")
            return
        try:
            details = self.review.case.details()
        except Exception as exc:  # noqa: BLE001 - an empty dialog would invite overwriting details it could not show
            self.status(f"Case details cannot be read, so they cannot be changed now: {exc}")
            return
        dialog = CaseDetailsDialog(
            details.sample_id if details else "", details.note if details else "", str(self.review.case.folder), self
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        sample_id, note = dialog.values()
        try:
            self.review.set_details(sample_id, note)
        except Exception as exc:  # noqa: BLE001 - shown; the old details stay
            if self.review.error:
                self.review_banner.show_text(f"{self.review.error} The case details were not recorded.")
            self.status(f"Case details not saved: {exc}")
            return
        self._show_case_title()
        self.status(f"Saved: sample ID {sample_id}" if sample_id else "Saved: no sample ID")

    def choose_reviewer_name(self) -> None:
        name, ok = ask_text(
            self,
            "Reviewer name",
            f"Your name or initials, recorded with each decision and sign-off from now on\n"
            f"(the login {self.review.login} is recorded beside it; empty: the login alone):",
            self.settings.reviewer_name(),
        )
        if ok:
            self.settings.set_reviewer_name(name.strip())
            self.review.set_reviewer_name(name)
            self._show_reviewer()
            self.status(f"Decisions are now recorded as {self.review.user}.")

    def _show_reviewer(self) -> None:
        self.reviewer_label.setText(f"Reviewer: {self.review.user}")

    def reopen_case(self) -> None:
        reason, ok = ask_text(self, "Reopen case", "Reason for reopening (recorded):")
        if ok and reason.strip():
            try:
                self.review.reopen(reason.strip())
            except Exception as exc:  # noqa: BLE001
                tell(self, "Reopen case", str(exc), warning=True)
            self._update_sign_state()

    # ------------------------------------------------------------------ the view as a picture
    def view_image(self) -> QImage | None:
        """The image on screen with its heatmap as shown and a caption strip (what, which model, RUO)."""
        picture = self.image_view.composed()
        if picture is None or self._current is None:
            return None
        item = self.model.item(self._current)
        sample = self.review.sample_id()
        lines = [f"{f'Sample {sample} · ' if sample else ''}{item.name} · AI call: {self._call_words(item)}"]
        if item.reviewed_id is not None:
            reviewed = self._class_words(item.reviewed_id)
            lines[0] += f" · reviewed as {reviewed} by {item.reviewer or '?'}"
        full = self.image_view.image_size()
        if picture.size() != full:  # a large scan is saved smaller, and says so
            lines[0] += f" · {picture.width()} x {picture.height()} of {full.width()} x {full.height()} px"
        if self.image_view.has_heatmap() and self.image_view.overlay_visible():
            heat = self.heatmap_bar.full_caption()
            lines.append(f"{heat} (red = most weight) · it explains the call; it is not a segmentation")
        info = self.model_info
        model = f"{info.name} {info.version}".strip() if info is not None else "no model"
        lines.append(f"{model} · HemaLens {__version__} · research use only: a screening aid, not a diagnosis")
        return captioned(picture, lines)

    def _call_words(self, item) -> str:
        if item.probabilities is None or len(item.probabilities) != len(self.model.labels):
            return "none"
        top = int(np.argmax(item.probabilities))
        best = f"{self.model.labels[top]} {format_percent(float(item.probabilities[top]))}"
        if self.model.ai_call_of(item) == UNIDENTIFIED_ID:
            return f"Unidentified (uncertain; best guess {best})"
        return best

    def _save_folder(self) -> Path:
        """Where a save dialog (report, picture) starts: the folder last saved to, Documents or home, the first
        that exists. A missing Documents folder left the dialog in the program's working folder."""
        docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        candidates = [self.settings.report_dir(), Path(docs) if docs else None, Path.home()]
        return next((c for c in candidates if c is not None and c.is_dir()), Path.home())

    def choose_view_file(self) -> None:
        if self._current is None or not self.image_view.has_image():
            self.status("No image on screen to save.")
            return
        start = self._save_folder() / f"{self.model.item(self._current).path.stem}_heatmap.png"
        name, _ = QFileDialog.getSaveFileName(self, "Save image with heatmap", str(start), "PNG (*.png)")
        if name:
            self.save_view_image(Path(name))

    def save_view_image(self, path: Path) -> bool:
        picture = self.view_image()
        if picture is None:
            self.status("No image on screen to save.")
            return False
        path = path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # a large picture takes a second or two
        try:
            save_png(picture, path)
        except HemaLensError as exc:
            self.error_banner.show_text(f"The image was not saved. {exc}")
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.settings.set_report_dir(path.parent)
        self.status(f"Saved {path} ({picture.width()} x {picture.height()} px, with caption).")
        return True

    def copy_view_image(self) -> None:
        picture = self.view_image()
        if picture is None:
            self.status("No image on screen to copy.")
            return
        QGuiApplication.clipboard().setImage(picture)
        self.status("Copied the image with its heatmap and caption.")

    # ------------------------------------------------------------------ reports
    def choose_report_file(self) -> None:
        """Ask where to write the report (the CSV and JSON go next to the chosen PDF), then export."""
        if not self._can_export_report():
            return
        start = self._save_folder() / default_report_name(self.review.case)
        self.reports.warm_up()  # while the dialog is open
        name, _ = QFileDialog.getSaveFileName(
            self, "Export case report (PDF; CSV and JSON are written next to it)", str(start), "PDF (*.pdf)"
        )
        if name:
            self.export_report(Path(name))

    def _can_export_report(self) -> bool:
        if self.review.case is None:
            self.status("Open a folder first: a report is about one case.")
            return False
        if self.engine.batch_running:
            self.status("Wait until classification has finished before exporting the report.")
            return False
        if self.reports.busy:
            self.status("A report is already being written…")
            return False
        return True

    def export_report(self, pdf: Path) -> bool:
        """Write ``pdf`` plus its .csv and .json siblings for the open case, on the report thread."""
        if not self._can_export_report():
            return False
        targets = ReportTargets.from_pdf(pdf)
        info = self.model_info
        job = ReportJob(
            case=self.review.case,
            targets=targets,
            image_hashes=tuple(self._hashes()),
            open_paths=tuple(str(i.path) for i in self.model.items()),
            uncertain_below=self.model.threshold,
            class_names=tuple(known_class_names().items()),
            sessions=(info.session,) if info is not None and info.session is not None else (),
            model_files=tuple(self.picker.model_paths()),
            colormap=self.engine.colormap,
        )
        self.reports.export(job)
        self.act_export_report.setEnabled(False)
        self.settings.set_report_dir(targets.pdf.parent)
        self.status(f"Writing the case report {targets.pdf.name} (with CSV and JSON)…")
        return True

    def _on_report_exported(self, outcome: ReportOutcome) -> None:
        self.act_export_report.setEnabled(True)
        if self.error_banner.text().startswith(REPORT_FAILED):
            self.error_banner.show_text(None)  # an earlier failed attempt is no longer the news
        result = outcome.result
        state = f"signed by {result.signed_by[0]}" if result.signed_by else "not signed: marked as draft"
        if result.not_signed:
            state += f"; {result.not_signed} image(s) added or changed since are not covered by the sign-off"
        text = f"Report written ({result.images} images, {state}): {outcome.targets.pdf} + .csv + .json"
        if result.unclassified:
            text += f"; it lists {result.unclassified} file(s) that could not be classified"
        if result.missing_heatmaps:
            text += f"; {result.missing_heatmaps} flagged cell(s) without a heatmap"
        self.status(text + ".")
        self._last_report = outcome.targets.pdf
        self.open_report_button.setToolTip(f"Open {outcome.targets.pdf} in the PDF viewer")
        self.open_report_button.setVisible(True)
        self.reportExported.emit(outcome)

    def open_last_report(self) -> None:
        """The report just written, in the system's PDF viewer."""
        if self._last_report is None or not self._last_report.is_file():
            self.status("The report file is no longer there.")
            self.open_report_button.setVisible(False)
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._last_report))):
            self.status(f"No PDF viewer could be started; the report is {self._last_report}.")

    def _on_report_failed(self, message: str) -> None:
        self.act_export_report.setEnabled(True)
        detail = re.sub(r"^Cannot write the report:?\s*", "", message) or message  # say it once
        self.error_banner.show_text(f"{REPORT_FAILED}: {detail}")
        self.status("Report not written (see the message above).")
        self.reportFailed.emit(message)

    # ------------------------------------------------------------------ heatmap, threshold
    def toggle_heatmap(self) -> None:
        self._set_heatmap_visible(self.act_heatmap.isChecked())

    def _set_heatmap_visible(self, visible: bool) -> None:
        self.act_heatmap.setChecked(visible)
        self.heatmap_bar.set_visible_checked(visible)
        self.image_view.set_overlay_visible(visible)
        self.settings.set_heatmap_visible(visible)

    def _on_opacity(self, value: float) -> None:
        self.image_view.set_opacity(value)
        self.settings.set_opacity(value)

    def _on_threshold(self, value: float) -> None:
        self.model.set_threshold(value)
        self.settings.set_threshold(value)
        self._refresh_panel_from_row()

    # ------------------------------------------------------------------ differential
    def _schedule_differential(self) -> None:
        if not self._diff_timer.isActive():
            self._diff_timer.start()

    def _update_differential(self) -> None:
        """O(classes): the model keeps the counts up to date as results and decisions arrive."""
        copies = self.model.copies()
        self.diff_panel.show_differential(self.model.differential(), self.model.rowCount() - copies, copies,
                                          self.model.folder_count)

    # ------------------------------------------------------------------ misc
    def status(self, text: str) -> None:
        self.status_label.setText(text)

    def _focus_review(self) -> None:
        """Give the keyboard back to the images (the gallery or the table, whichever is shown)."""
        self.batch_panel.apply_filter_text()  # a name held for a pause in typing filters before the views take over
        if self.tabs.currentWidget() is self.gallery:
            self.gallery.focus_current()
        else:
            self.batch_panel.table.setFocus()

    def _focus_filter(self) -> None:
        self.batch_panel.filter_text.setFocus()
        self.batch_panel.filter_text.selectAll()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent()
        for p in recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _c=False, p=p: self.open_paths([Path(p)]))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent()
        self._rebuild_recent_menu()

    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(action, key) for every shortcut that does something with this model."""
        unused = set(self.class_actions[len(self.model.labels):])  # keys past the model's classes
        return [
            (a.text(), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
            for a in self.actions()
            if not a.shortcut().isEmpty() and a not in unused
        ]

    def show_shortcuts(self) -> None:
        html = "".join(f"<tr><td>{t}</td><td>&nbsp;&nbsp;<b>{k}</b></td></tr>" for t, k in self.shortcut_rows())
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(
            f"<table>{html}</table><p>Arrow keys move in the table, gallery and image.</p>"
            "<p>In the gallery, Shift+click, Ctrl+click, Shift+arrows or Ctrl+A select several thumbnails of one "
            "class: Enter, 1–9, 0, F, C and Backspace then decide them all at once, and Ctrl+Z undoes the group.</p>"
        )
        box.exec()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shown_once:  # share the real width (known only now) between the three panes
            self._shown_once = True
            QTimer.singleShot(0, self._share_width)

    def _share_width(self) -> None:
        self.splitter.setSizes(pane_widths(self.splitter.width(), self.batch_panel.full_width()))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        models = [p for p in paths if p.suffix.lower() == ".onnx"]
        if models:
            self.load_model(models[0])
        images = [p for p in paths if p.suffix.lower() != ".onnx"]
        if images:
            self.open_paths(images)
        event.acceptProposedAction()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self._sync_with_records()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.engine.shutdown()
        self.reports.shutdown()
        self.augmenter.shutdown()
        self.suggester.shutdown()
        if self._check_dialog is not None:
            self._check_dialog.reject()  # stops a running check and joins its thread
        self.thumbnails.stop()
        self.gallery.stop()
        self.review.close()
        super().closeEvent(event)


def unlike_training_warning(items: list, model_name: str) -> str | None:
    """The folder-level warning (inference.familiarity.folder_unlike_warning) for the table's items."""
    unlike = sum(UNFAMILIAR_NOTE in item.notes for item in items)
    return folder_unlike_warning(unlike, sum(item.status == DONE for item in items), model_name)
