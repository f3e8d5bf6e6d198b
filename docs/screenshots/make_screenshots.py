"""Take the README screenshots from the real window (run under Xvfb or on a desktop).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/screenshots/make_screenshots.py \
        --model assets/models/<model>.onnx --images /path/to/smear/folder --out docs/screenshots

Uses throw-away settings and a throw-away review database, so it never touches the user's own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _wait(app, predicate, timeout_s: float = 60.0) -> None:
    import time

    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float = 0.5) -> None:
    """Let timers fire before a shot (the differential, for one, redraws 150 ms after the last change)."""
    import time

    end = time.monotonic() + seconds
    _wait(app, lambda: time.monotonic() >= end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--out", default=Path("docs/screenshots"), type=Path)
    parser.add_argument("--show", default="", help="file name of the image to show (default: most confident)")
    parser.add_argument("--review", type=int, default=6, help="how many images to review before the shot")
    parser.add_argument("--other-images", type=Path,
                        help="a folder of another model's kind of images: shot of the offer to switch models")
    args = parser.parse_args()

    import onnxruntime  # noqa: F401 - before Qt, as the app does
    from PySide6.QtCore import QPoint, QRect, QSettings
    from PySide6.QtWidgets import QApplication

    from gui.app import configure_application
    from gui.main_window import MainWindow
    from gui.model_card import ModelCardDialog
    from gui.review_bridge import ReviewBridge
    from gui.settings import AppSettings

    tmp = Path(tempfile.mkdtemp(prefix="hemalens-shots-"))
    app = QApplication(sys.argv[:1])
    configure_application(app)
    window = MainWindow(AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)),
                        ReviewBridge(tmp / "reviews.sqlite3"))
    window.resize(1600, 960)
    window.show()
    done: list[bool] = []
    window.batchFinished.connect(done.append)
    window.picker.refresh(current=args.model)  # the installed models, as start() lists them
    window.load_model(args.model)
    _wait(app, lambda: window.model_info is not None)
    window.open_paths([args.images])
    _wait(app, lambda: bool(done))
    model = window.model
    rows = [r for r in range(model.rowCount()) if model.item(r).probabilities is not None]

    # Review a few with the same calls the keys make, so the table shows decisions and a flag; as a technician
    # does, once each image is on screen (a class key is refused before).
    for n, row in enumerate(rows[: args.review]):
        window.set_current_row(row)
        _wait(app, window.image_shown)
        if n % 3 == 1:
            window.toggle_flag()
        if n % 4 == 2:
            window.assign_index((int(model.item(row).probabilities.argmax()) + 1) % len(model.class_ids))
        else:
            window.confirm_call()
    if args.show:
        target = next(r for r in range(model.rowCount()) if model.item(r).path.name == args.show)
    else:
        target = max(rows[args.review :] or rows, key=lambda r: float(model.item(r).probabilities.max()))
    shown: list[int] = []
    window.detailShown.connect(shown.append)
    window.set_current_row(target)
    _wait(app, lambda: target in shown and window.image_view.has_heatmap())
    _settle(app)
    args.out.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(args.out / "main-window.png"))

    uncertain = [r for r in rows if float(model.item(r).probabilities.max()) < window.prob_panel.threshold_value()]
    if uncertain:
        shown.clear()
        window.set_current_row(uncertain[0])
        _wait(app, lambda: uncertain[0] in shown)
        _settle(app)
        window.grab().save(str(args.out / "uncertain.png"))

    window.act_gallery.trigger()
    window.set_current_row(target)
    _settle(app)
    window.grab().save(str(args.out / "gallery.png"))

    # A class group selected at once (the biggest section not reviewed yet), as Ctrl+A selects it.
    sections = [s for s in window.gallery._sections if s.count() > 1]
    section = max(sections, key=lambda s: sum(model.item(r).reviewed_id is None for r in s.source_rows()))
    first = section.source_rows()[0]
    if first != window.current_row():  # a click on its first thumbnail, then Ctrl+A
        shown.clear()
        window.set_current_row(first)
        _wait(app, lambda: first in shown)
    section.view.setFocus()
    section.view.selectAll()
    section_top = section.mapTo(window.gallery.page, QPoint(0, 0)).y()
    window.gallery.scroll.verticalScrollBar().setValue(section_top)  # thumbnails are decoded when painted
    _wait(app, lambda: all(window.thumbnails.shown(model.item(r).path) for r in section.source_rows()))
    _settle(app)
    window.grab().save(str(args.out / "gallery-group.png"))

    card = ModelCardDialog(window.model_info, window)
    card.show()
    _settle(app)
    card.grab().save(str(args.out / "model-card.png"))
    card.close()

    if args.other_images:
        done.clear()
        window.open_paths([args.other_images])
        _wait(app, lambda: bool(done) and window.model_offer.isVisible())
        _settle(app)
        offer = window.model_offer
        bottom = offer.mapTo(window, QPoint(0, offer.height())).y()
        window.grab(QRect(0, 0, window.width(), bottom + 2)).save(str(args.out / "model-offer.png"))
    window.close()
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
