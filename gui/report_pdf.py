"""The PDF case report a lab files: drawn with Qt's own QTextDocument and QPdfWriter.

Qt is already the app's toolkit, so no extra PDF dependency is needed and the report uses the
same fonts as the app. The content comes from :class:`review.report.CaseReport`, the same data
as the CSV/JSON exports. Pages: (1) case summary, sign-off and the differential count before
and after review; (2) the flagged cells with heatmap thumbnails; (3) the model card summary.
This module never runs a model: heatmap thumbnails are passed in (see
:func:`heatmap_thumbnails`, which the CLI and the app use to make them from a ModelSession).
"""

from __future__ import annotations

import html
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gui.calls import format_percent
from gui.model_card import measured_summary
from gui.settings import DEFAULT_HEATMAP_COLOURS, HEATMAP_COLOURS
from hemalens import RESEARCH_USE_STATEMENT, __version__
from inference.images import needs_attention
from inference.model_figures import HELD_OUT_KEYS, call_records, per_class_recall, percent
from review.records import readable_time
from review.report import (
    NOT_CLASSIFIED,
    NOT_REVIEWED,
    CaseReport,
    ReportError,
    ReportRow,
    differential,
    differential_by_folder,
    is_uncertain_call,
    moved_in_review,
)

THUMB_SIDE = 200  # pixels of the longest thumbnail side stored in the PDF
THUMB_DISPLAY = 150  # how wide it is drawn in the document (layout pixels)

_APP: Any = None  # keeps a headless QGuiApplication alive when we had to create one


@dataclass(frozen=True)
class Thumbnail:
    """A flagged cell's picture for the report (None when it could not be made) and a caption."""

    rgb: np.ndarray | None
    caption: str
    has_heatmap: bool = False
    plain: np.ndarray | None = None  # the same image without the heatmap, for the reader to judge the cell itself


@dataclass(frozen=True)
class ModelCardSummary:
    """What the report says about a model: identity, intended use, limits, measured figures."""

    name: str
    version: str
    sha256: str
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    training_data: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    heatmap_method: str | None = None
    class_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_session(cls, session: Any) -> ModelCardSummary:
        """From an ``inference.session.ModelSession`` (its spec and file hash)."""
        spec, prov = session.spec, session.spec.provenance
        return cls(
            name=spec.name,
            version=spec.version,
            sha256=session.sha256,
            description=spec.description,
            intended_use=prov.intended_use,
            limitations=prov.limitations,
            training_data=prov.training_data,
            metrics=dict(prov.metrics),
            heatmap_method=session.cam_method,
            class_names={c.id: c.name for c in spec.classes},
        )


def ensure_gui_application() -> Any:
    """QTextDocument needs a QGuiApplication (fonts); make a headless one when none exists."""
    global _APP
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        _APP = app = QGuiApplication(["hemalens-report"])
    return app


def _fit(rgb: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def heatmap_thumbnails(rows: list[ReportRow], session: Any | None, *, side: int = THUMB_SIDE,
                       colormap: str = "jet") -> dict[str, Thumbnail]:
    """Heatmap overlays of the given rows' images for the class the model called.

    Checks the file still has the recorded content hash (so a replaced image never shows a
    heatmap that was not the one reviewed), and that ``session`` is the model the row was
    classified with; otherwise the caption says why there is no heatmap.
    """
    from inference.errors import HemaLensError
    from inference.images import load_image
    from inference.overlay import render_overlay
    from review.store import file_sha256

    out: dict[str, Thumbnail] = {}
    for row in rows:
        path = Path(row.path)
        try:
            if file_sha256(path) != row.image_sha256:
                out[row.image_sha256] = Thumbnail(None, "Image file has changed since review; not shown.")
                continue
            rgb = load_image(path).rgb
        except (OSError, HemaLensError) as exc:
            out[row.image_sha256] = Thumbnail(None, f"Image not available ({exc}).")
            continue
        if session is None or session.sha256 != row.model_sha256:
            out[row.image_sha256] = Thumbnail(_fit(rgb, side), "Image only: the model file is not available.")
            continue
        ids = [c.id for c in session.spec.classes]
        index = ids.index(row.predicted_class) if row.predicted_class in ids else None
        prediction = session.predict(rgb)
        plain = _fit(rgb, side)
        heat = prediction.heatmap(index, max_side=max(plain.shape[:2]))  # at thumbnail size: a scan stays quick
        if heat is None:
            out[row.image_sha256] = Thumbnail(plain, "Image only: this model gives no heatmap.")
            continue
        label = prediction.labels[prediction.top_index if index is None else index]
        out[row.image_sha256] = Thumbnail(
            render_overlay(plain, heat, colormap=colormap), f"{session.cam_method or 'Heatmap'} for {label}",
            has_heatmap=True,
            plain=plain,
        )
    return out


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _name(class_id: str | None, names: Mapping[str, str]) -> str:
    if class_id is None:
        return NOT_REVIEWED
    if class_id in (NOT_REVIEWED, NOT_CLASSIFIED):
        return class_id
    return names.get(class_id, "Unidentified" if class_id == "unidentified" else class_id)


def _call(row: ReportRow, report: CaseReport, names: Mapping[str, str]) -> str:
    """The model's call as the app showed it: an uncertain call is the best guess with a "?"."""
    name = _e(_name(row.predicted_class, names))
    return f"{name}? (uncertain)" if is_uncertain_call(row, report.uncertain_below) else name


_CSS = """
body { font-family: 'DejaVu Sans', sans-serif; font-size: 9pt; color: #1b1b1b; }
h1 { font-size: 17pt; margin-bottom: 0px; color: #7a1020; }
h2 { font-size: 12pt; margin-top: 14px; margin-bottom: 4px; color: #7a1020; }
h3 { font-size: 10pt; margin-top: 8px; margin-bottom: 2px; }
.sub { color: #555555; font-size: 8pt; }
.small { color: #555555; font-size: 7.5pt; }
th { background-color: #efe6e7; text-align: left; font-weight: bold; }
.num { text-align: right; }
.signed { background-color: #e4f2e4; color: #17561f; font-weight: bold; font-size: 11pt; }
.draft { background-color: #fbe3d6; color: #8a2d00; font-weight: bold; font-size: 11pt; }
.ruo { background-color: #f3f3f3; color: #333333; font-size: 8.5pt; }
.changed { color: #8a2d00; font-weight: bold; }
"""


def _table(
    header: list[str] | None,
    rows: list[list[str]],
    widths: list[int] | None = None,
    num_cols: tuple[int, ...] = (),
) -> str:
    """An HTML table; ``header`` None draws none (key/value tables). Widths are percentages."""

    def cell(tag: str, i: int, text: str) -> str:
        attrs = f' width="{widths[i]}%"' if widths else ""
        attrs += ' align="right"' if i in num_cols else ""
        return f"<{tag}{attrs}>{text}</{tag}>"

    head = "<thead><tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (
        '<table width="100%" border="1" cellspacing="0" cellpadding="4" '
        f'style="border-collapse: collapse; border-color: #9a9a9a">{head}{body}</table>'
    )


def _summary_page(report: CaseReport, names: Mapping[str, str]) -> str:
    total = len(report.rows)
    by_folder = differential_by_folder(report)  # one sub-folder per slide or patient is common
    folders = len(by_folder)
    reviewers = sorted({r.reviewer for r in report.rows if r.reviewer})
    models = (
        "<br/>".join(
            f"{_e(m.name)} {_e(m.version)} ({_e(m.sha256[:12])}&hellip;, {m.images} images)" for m in report.models
        )
        or "none recorded"
    )
    late = report.not_signed_rows
    signed_at = report.signed_by[1] if report.signed_by else None
    if report.signed_by and late:
        banner = (
            f'<p class="draft">Signed by {_e(report.signed_by[0])} on {_e(readable_time(signed_at))}, but '
            f"{len(late)} image(s) were added or changed since and are not covered by that sign-off.</p>"
        )
    elif report.signed_by:
        banner = (
            f'<p class="signed">&#10003; Signed by {_e(report.signed_by[0])} on {_e(readable_time(signed_at))}</p>'
        )
    else:
        banner = '<p class="draft">DRAFT &mdash; this case has not been signed off.</p>'
    summary = _table(
        None,
        [
            ["Case", f"#{report.case_id}"],
            ["Sample / slide ID", _e(report.sample_id) if report.sample_id
             else '<span class="small">not set (Review &rarr; Case details&hellip; in HemaLens)</span>'],
            *([["Case note", _e(report.case_note).replace("\n", "<br>")]] if report.case_note else []),
            ["Folder", _e(report.folder)],
            ["Case opened", _e(readable_time(report.created_at))],
            ["Images", str(total) + (f" in {folders} folders, counted as one case" if folders > 1 else "")],
            *([["Files not classified", f"{len(report.unclassified)} (listed below; never assessed)"]]
              if report.unclassified else []),
            *([[f"Uncertain model calls (top under {report.uncertain_below:.0%})",
                f"{len(report.uncertain_rows)}{' (listed below)' if report.uncertain_rows else ''}"]]
              if report.uncertain_below is not None else []),
            ["Reviewed", f"{report.reviewed_count} of {total}" + (
                f" ({report.reviewed_in_groups} of them accepted on their thumbnails, in gallery groups)"
                if report.reviewed_in_groups else "")],
            *([["Not covered by the sign-off", f"{len(late)} (listed below; added or changed since)"]] if late else []),
            ["Changed by the reviewer", str(report.changed_count)],
            ["Flagged for a second look", str(len(report.flagged_rows))],
            ["Model calls with a note", f"{len(report.noted_rows)}{' (listed below)' if report.noted_rows else ''}"],
            ["Reviewers", _e(", ".join(reviewers)) or "&mdash;"],
            ["Model(s)", models],
        ],
        widths=[36, 64],
    )
    diff_rows = []
    moved = moved_in_review(report)
    for class_id, pre, pre_pct, post, post_pct in differential(report):
        delta = moved[class_id]
        delta_text = ("&mdash;" if class_id == NOT_REVIEWED
                      else f'<span class="changed">{delta:+d}</span>' if delta else "0")
        diff_rows.append(
            [_e(_name(class_id, names)), str(pre), f"{pre_pct:.1f}%", str(post), f"{post_pct:.1f}%", delta_text]
        )
    diff_rows.append(["<b>Total</b>", f"<b>{total}</b>", "", f"<b>{total}</b>", "", ""])
    diff = _table(
        ["Class", "Model call", "%", "After review", "%", "Changed in review"],
        diff_rows,
        widths=[34, 14, 12, 14, 12, 14],
        num_cols=(1, 2, 3, 4, 5),
    )
    history = ""
    if report.events:
        items = "".join(
            f"<li>{_e(readable_time(e.at))}: {'signed' if e.kind == 'sign' else 'reopened'} by {_e(e.user)}"
            f"{' &mdash; reason: ' + _e(e.reason) if e.reason else ''}</li>"
            for e in report.events
        )
        history = f"<h3>Sign-off history</h3><ul>{items}</ul>"
    signature = (
        f"<p>Signed by <b>{_e(report.signed_by[0])}</b> on <b>{_e(readable_time(signed_at))}</b>, after every "
        f"image then in the case ({len(report.signed_images or ())}) was reviewed and none was left Unidentified.</p>"
        if report.signed_by
        else "<p>Not signed. A case can be signed once every image is reviewed and none is left Unidentified.</p>"
    )
    if report.signed_but_gone:
        signature += (
            f'<p class="changed">{report.signed_but_gone} of the signed images are no longer among the case\'s '
            "files (deleted, or moved out of the folder); their decisions stay in the JSON's audit trail.</p>"
        )
    if late:
        listed = "".join(f"<li>{_e(r.file)} &mdash; {_e(_name(r.reviewed_class, names))}</li>"
                         for r in late[:NOTED_ROWS_SHOWN])
        signature += (
            f'<p class="changed">Not covered by this sign-off ({len(late)}): these images were added to the folder, '
            "or their file changed, after it was signed. Reopen the case (with a reason) to review them and sign "
            f"again.</p><ul>{listed}</ul>{_more_line(len(late), 'image')}"
        )
    return (
        f"<h1>HemaLens case report</h1>"
        f'<p class="sub">Generated {_e(readable_time(report.generated_at))} by HemaLens {_e(__version__)}</p>'
        f"{banner}<h2>Case summary</h2>{summary}"
        f"<h2>Differential count</h2>"
        f'<p class="small">Model call: the class the model gave each image. After review: the class the '
        f"technician confirmed or chose. Changed in review: reviewed images the technician moved into (+) or out "
        f"of (&minus;) the class; images not reviewed yet change nothing.</p>{diff}"
        f"{_folder_section(report, by_folder, names)}"
        f"{_uncertain_section(report, names)}"
        f"{_noted_section(report, names)}"
        f"{_comment_section(report, names)}"
        f"{_unclassified_section(report)}"
        f"<h2>Sign-off</h2>{signature}{history}"
        f'<p class="ruo"><b>Research use only.</b> {_e(RESEARCH_USE_STATEMENT)}</p>'
    )


NOTED_ROWS_SHOWN = 40
FOLDERS_SHOWN = 6  # columns of the per-folder table that fit the page beside the class names


def _folder_section(report: CaseReport, folders: list[tuple[str, dict[str, int], dict[str, int]]],
                    names: Mapping[str, str]) -> str:
    """Each folder's own count (``differential_by_folder``), when the case counts several."""
    if len(folders) < 2:
        return ""
    if len(folders) > FOLDERS_SHOWN:
        return (f"<h3>Per folder</h3><p class=\"small\">The {len(folders)} folders' own counts are in the JSON report "
                "(counts, by_folder).</p>")
    classes = [class_id for class_id, *_ in differential(report)]
    rows = [[_e(_name(c, names)), *(f"{pre.get(c, 0)} / {post.get(c, 0)}" for _f, pre, post in folders)]
            for c in classes]
    rows.append(["<b>Images</b>", *(f"<b>{sum(pre.values())}</b>" for _f, pre, _post in folders)])
    share = (100 - 28) // len(folders)
    table = _table(["Class", *(_e(f or "(the case folder)") for f, _pre, _post in folders)], rows,
                   widths=[28, *([share] * len(folders))], num_cols=tuple(range(1, len(folders) + 1)))
    return ("<h3>Per folder</h3><p class=\"small\">The count above is over all the case's folders together; "
            "here each folder's own, as model call / after review.</p>" + table)


def _more_line(total: int, what: str) -> str:
    """The line under a list cut at NOTED_ROWS_SHOWN rows: how many more, and where they all are."""
    if total <= NOTED_ROWS_SHOWN:
        return ""
    return (f'<p class="small">&hellip; and {total - NOTED_ROWS_SHOWN} more: every {what} is in the CSV and '
            "JSON reports.</p>")


def _noted_section(report: CaseReport, names: Mapping[str, str]) -> str:
    """Images whose call came with a note (image quality, unlike the model's training images): the
    reader of the report must see which calls stand on weaker ground, as the technician did."""
    noted = report.noted_rows
    if not noted:
        return ""
    # A note many images share (e.g. "unlike this model's training images") is written out once, above the
    # table, and cited by number in its rows: a folder from another lab would otherwise fill pages with it.
    warned = [(r, [n for n in r.notes if needs_attention(n)]) for r in noted]  # not e.g. the bit depth scaled
    counts = Counter(n for _r, notes in warned for n in notes)
    shared = {note: i for i, note in enumerate((n for n, c in counts.most_common() if c > 1), start=1)}
    legend = "".join(f"<p>[{i}] {_e(note)} &mdash; {counts[note]} images</p>" for note, i in shared.items())
    rows = [
        [_e(r.file), _call(r, report, names), _e(_name(r.reviewed_class, names)),
         "<br/>".join(f"[{shared[n]}]" if n in shared else _e(n) for n in notes)]
        for r, notes in warned[:NOTED_ROWS_SHOWN]
    ]
    more = _more_line(len(noted), "note")
    return (
        f"<h2>Model calls with a note ({len(noted)})</h2>"
        '<p class="small">The app showed these notes beside the model\'s call: such calls are less reliable '
        "than the model's measured accuracy suggests.</p>"
        + legend
        + _table(["Image", "Model call", "After review", "Note"], rows, widths=[24, 15, 15, 46])
        + more
    )


def _uncertain_section(report: CaseReport, names: Mapping[str, str]) -> str:
    """Calls under the app's threshold: shown there as Unidentified with the best guess, so here too."""
    uncertain = report.uncertain_rows
    if not uncertain:
        return ""
    rows = [
        [_e(r.file), f"{_e(_name(r.predicted_class, names))} {_e(format_percent(max(r.probabilities.values())))}",
         _e(_name(r.reviewed_class, names))]
        for r in uncertain[:NOTED_ROWS_SHOWN]
    ]
    more = _more_line(len(uncertain), "probability")
    return (
        f"<h2>Uncertain model calls ({len(uncertain)})</h2>"
        f'<p class="small">The model\'s top probability was under {report.uncertain_below:.0%}, so the app showed '
        "these images as Unidentified with the model's best guess, and the model-call column above counts them "
        "as Unidentified.</p>"
        + _table(["Image", "Best guess", "After review"], rows, widths=[40, 30, 30])
        + more
    )


def _comment_section(report: CaseReport, names: Mapping[str, str]) -> str:
    """What the reviewers wrote on images they did not flag: before, only the CSV and JSON carried it."""
    commented = report.commented_unflagged_rows
    if not commented:
        return ""
    rows = [
        [_e(r.file), _e(_name(r.reviewed_class, names)), _e(r.reviewer or "-"), _e(r.comment)]
        for r in commented[:NOTED_ROWS_SHOWN]
    ]
    return (
        f"<h2>Comments on images not flagged ({len(commented)})</h2>"
        '<p class="small">The comments on flagged cells are with their pictures below.</p>'
        + _table(["Image", "After review", "By", "Comment"], rows, widths=[26, 17, 17, 40])
        + _more_line(len(commented), "comment")
    )


def _unclassified_section(report: CaseReport) -> str:
    """Files of the case that no model could classify: counted nowhere else, so named here."""
    if not report.unclassified:
        return ""
    rows = [[_e(u.file), _e(u.reason)] for u in report.unclassified]
    return (
        f"<h2>Files that could not be classified ({len(report.unclassified)})</h2>"
        '<p class="small">These files of the case could not be read or classified, so neither the model nor '
        "the reviewer assessed them and they are not in the counts above.</p>"
        + _table(["File", "Reason"], rows, widths=[35, 65])
    )


def _record_line(records: Mapping[str, str], call: str) -> str:
    """How the model's calls of this class fared on its test images (when its card has the figures): the
    pathologist reading a flagged cell weighs its call with that, as the technician did in the app."""
    record = records.get(call)
    return f'<span class="small">{_e(record)}</span><br/>' if record else ""


def _flagged_page(report: CaseReport, thumbs: Mapping[str, Thumbnail], names: Mapping[str, str],
                  cards: Sequence[ModelCardSummary] = (), colormap: str = "jet") -> str:
    flagged = report.flagged_rows
    records = {card.sha256: call_records(card.metrics, list(card.class_names.values())) for card in cards}
    if not flagged:
        return '<h2 style="page-break-before: always">Flagged cells</h2><p>No cells were flagged in this case.</p>'
    rows = []
    for row in flagged:
        thumb = thumbs.get(row.image_sha256)
        if thumb is not None and thumb.rgb is not None:
            h, w = thumb.rgb.shape[:2]
            size = f'width="{THUMB_DISPLAY}" height="{round(THUMB_DISPLAY * h / w)}"'
            picture = f'<img src="thumb:{row.image_sha256}" {size}/>'
            if thumb.plain is not None:  # the cell as it is, then where the model looked
                picture = f'<img src="plain:{row.image_sha256}" {size}/>&nbsp;{picture}'
        else:
            picture = '<p class="small">(no picture)</p>'
        caption = f'<br/><span class="small">{_e(thumb.caption)}</span>' if thumb else ""
        top = sorted(row.probabilities.items(), key=lambda kv: -kv[1])[:3]
        probs = ", ".join(f"{_e(_name(c, names))} {_e(format_percent(p))}" for c, p in top)  # as the app writes them
        changed = row.reviewed_class is not None and row.reviewed_class != row.predicted_class
        reviewed = _e(_name(row.reviewed_class, names))
        details = (
            f"<b>{_e(row.file)}</b><br/>"
            f"Model call: {_call(row, report, names)}"
            f"{' (' + probs + ')' if probs else ''}<br/>"
            f"{_record_line(records.get(row.model_sha256 or '', {}), _name(row.predicted_class, names))}"
            f"Reviewed as: {'<span class=changed>' + reviewed + '</span>' if changed else reviewed}<br/>"
            f"By {_e(row.reviewer or '-')} on {_e(readable_time(row.reviewed_at))}<br/>"
            f"Comment: {_e(row.comment) or '&mdash;'}<br/>"
            + "".join(f'<span class="changed">Note: {_e(n)}</span><br/>' if needs_attention(n)
                      else f"Note: {_e(n)}<br/>" for n in row.notes)
            + f'<span class="small">SHA-256 {_e(row.image_sha256[:16])}&hellip;</span>'
        )
        rows.append([picture + caption, details])
    table = _table(["Image and heatmap", "Cell"], rows, widths=[52, 48])
    return (
        f'<h2 style="page-break-before: always">Flagged cells ({len(flagged)})</h2>'
        '<p class="small">Heatmaps show where the model looked for the class it called '
        f"({HEATMAP_COLOURS.get(colormap, HEATMAP_COLOURS[DEFAULT_HEATMAP_COLOURS])[1]} = most weight). "
        "They explain the model's call; they are not a segmentation.<br/>"
        'Scale: low <img src="legend:heatmap" width="120" height="8"/> high</p>'
        f"{table}"
    )


def _model_page(report: CaseReport, cards: list[ModelCardSummary]) -> str:
    parts = ['<h2 style="page-break-before: always">Model card summary</h2>']
    known = {c.sha256: c for c in cards}
    for used in report.models or ():
        card = known.get(used.sha256)
        parts.append(f"<h3>{_e(used.name)} {_e(used.version)}</h3>")
        rows = [
            ["File SHA-256", f'<span class="small">{_e(used.sha256)}</span>'],
            ["Images classified", str(used.images)],
        ]
        if card is None:
            rows.append(["Model card", "The model file was not available when this report was made."])
        else:
            metrics = _measured_html(card.metrics)
            rows += [
                ["Description", _e(card.description) or "&mdash;"],
                ["Intended use", _e(card.intended_use) or "&mdash;"],
                ["Limitations", _e(card.limitations) or "&mdash;"],
                ["Training data", _e(card.training_data) or "&mdash;"],
                ["Measured", metrics or "&mdash;"],
                ["Heatmap method", _e(card.heatmap_method) or "none"],
                ["Classes", _e(", ".join(card.class_names.values())) or "&mdash;"],
            ]
        parts.append(_table(None, rows, widths=[25, 75]))
    if not report.models:
        parts.append("<p>No model predictions were recorded in this case.</p>")
    parts.append(f'<p class="ruo"><b>Research use only.</b> {_e(RESEARCH_USE_STATEMENT)}</p>')
    return "".join(parts)


def _measured_html(metrics: Mapping[str, Any]) -> str:
    """The figures a reader of the report needs, in sentences (as the app's model card opens), not the raw
    metrics: those run to pages and stay in the model card."""
    lines, _ = measured_summary(dict(metrics))
    recall = per_class_recall(dict(metrics))
    if recall:
        lines.append("Share of each class found on the test images (recall): "
                     + ", ".join(f"{_e(name)} {percent(value)}" for name, value in recall.items()) + ".")
    if not lines:
        return ""
    more = "" if set(metrics) <= HELD_OUT_KEYS else (
        '<br><span class="small">Every measured figure: Model &rarr; Model card&hellip; in HemaLens, or '
        "<i>hemalens models --json</i>.</span>")
    return "<br>".join(lines) + more


def report_html(
    report: CaseReport,
    thumbnails: Mapping[str, Thumbnail] | None = None,
    model_cards: list[ModelCardSummary] | None = None,
    class_names: Mapping[str, str] | None = None,
    colormap: str = "jet",
) -> str:
    """The whole report as the HTML subset QTextDocument understands. ``class_names``: names of classes
    from other installed models (a decision recorded before a model switch); the cards' names win.
    ``colormap``: the heatmaps' colours, for the words of their scale."""
    cards = list(model_cards or [])
    names: dict[str, str] = dict(class_names or {})
    for card in cards:
        names.update(card.class_names)
    return (
        f"<html><head><style>{_CSS}</style></head><body>"
        f"{_summary_page(report, names)}{_flagged_page(report, thumbnails or {}, names, cards, colormap)}"
        f"{_model_page(report, cards)}"
        "</body></html>"
    )


def _footer_text(report: CaseReport) -> str:
    state = f"signed by {report.signed_by[0]}" if report.signed_by else "DRAFT - not signed"
    if report.not_signed_rows:
        state += f" ({len(report.not_signed_rows)} image(s) not covered)"
    sample = f"{report.sample_id} - " if report.sample_id else ""
    return (f"HemaLens case report - {sample}case #{report.case_id} ({Path(report.folder).name}) - {state} - "
            "research use only")


def write_pdf(
    report: CaseReport,
    path: str | Path,
    *,
    thumbnails: Mapping[str, Thumbnail] | None = None,
    model_cards: list[ModelCardSummary] | None = None,
    class_names: Mapping[str, str] | None = None,
    colormap: str = "jet",
) -> Path:
    """Render the report to an A4 PDF with a footer (case, sign-off state, page N of M) on every page.

    The document is laid out at screen DPI (so sizes in the HTML mean what they say) and each page
    is painted scaled onto the 300 dpi PDF; written to a temp name, then renamed. Raises ReportError.
    """
    ensure_gui_application()
    from PySide6.QtCore import QMarginsF, QRectF, QSizeF, Qt, QUrl
    from PySide6.QtGui import (
        QAbstractTextDocumentLayout,
        QColor,
        QFont,
        QGuiApplication,
        QPageLayout,
        QPageSize,
        QPainter,
        QPdfWriter,
        QTextDocument,
    )

    from gui.qimage import rgb_to_qimage

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"Cannot write the report {path}: {exc.strerror or exc}") from exc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setDefaultFont(QFont("DejaVu Sans", 9))
    for image_hash, thumb in (thumbnails or {}).items():
        for scheme, rgb in (("thumb", thumb.rgb), ("plain", thumb.plain)):
            if rgb is not None:
                doc.addResource(
                    QTextDocument.ResourceType.ImageResource, QUrl(f"{scheme}:{image_hash}"), rgb_to_qimage(rgb)
                )
    from inference.overlay import colormap_legend

    doc.addResource(
        QTextDocument.ResourceType.ImageResource, QUrl("legend:heatmap"),
        rgb_to_qimage(colormap_legend(256, 10, colormap=colormap)),
    )
    doc.setHtml(report_html(report, thumbnails, model_cards, class_names, colormap))

    writer = QPdfWriter(str(tmp))
    writer.setTitle(f"HemaLens case report #{report.case_id}")
    writer.setCreator(f"HemaLens {__version__}")
    writer.setResolution(300)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(16, 14, 16, 12),
            QPageLayout.Unit.Millimeter,
        )
    )
    screen = QGuiApplication.primaryScreen()
    doc_dpi = screen.logicalDotsPerInchY() if screen is not None else 96.0
    scale = writer.resolution() / doc_dpi
    paint = writer.pageLayout().paintRectPixels(writer.resolution())
    page_w, page_h = paint.width() / scale, paint.height() / scale
    footer_h = 28.0
    body_h = page_h - footer_h
    doc.setPageSize(QSizeF(page_w, body_h))
    pages = doc.pageCount()

    painter = QPainter()
    if not painter.begin(writer):
        tmp.unlink(missing_ok=True)
        raise ReportError(f"Qt could not start writing the PDF {path} (is the folder writable?)")
    try:
        painter.scale(scale, scale)
        footer_font = QFont("DejaVu Sans")
        footer_font.setPixelSize(round(7 * doc_dpi / 72))  # 7 pt in the (scaled) document units
        footer = _footer_text(report)
        for page in range(pages):
            if page:
                writer.newPage()
            painter.save()
            painter.translate(0, -page * body_h)
            clip = QRectF(0, page * body_h, page_w, body_h)
            painter.setClipRect(clip)
            context = QAbstractTextDocumentLayout.PaintContext()
            context.clip = clip
            doc.documentLayout().draw(painter, context)
            painter.restore()
            painter.setPen(QColor("#999999"))
            painter.drawLine(0, int(body_h + 8), int(page_w), int(body_h + 8))
            painter.setPen(QColor("#555555"))
            painter.setFont(footer_font)
            text_rect = QRectF(0, body_h + 10, page_w, footer_h - 10)
            painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), footer)
            painter.drawText(
                text_rect,
                int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                f"Page {page + 1} of {pages}",
            )
    finally:
        painter.end()
    del writer  # flushes and closes the file
    try:
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise ReportError(f"Qt could not write the PDF {path} (is the folder writable?)")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"Cannot write the report {path}: {exc.strerror or exc}") from exc
    return path
