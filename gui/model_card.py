"""The model card dialog: what a model is, what it was trained and measured on, and its file hash."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from gui.items import ModelInfo
from inference.contract import TrainingReference
from inference.model_figures import HELD_OUT_KEYS, held_out_result, number, other_lab_result, percent


def _esc(value: Any) -> str:
    return html.escape(str(value)) if value not in (None, "") else "<i>not stated</i>"


def _metric(value: Any) -> str:
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return f"{value:.3f} ({100 * value:.1f} %)"
    return html.escape(str(value))


def table_html(header: list[str], rows: list[list[str]]) -> str:
    cell = "padding:1px 8px 1px 0"
    head = "".join(f"<th style='{cell};text-align:left'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='{cell}'>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table cellspacing='0'><tr>{head}</tr>{body}</table>"


def measured_summary(metrics: dict[str, Any]) -> tuple[list[str], set[str]]:
    """The figures a technician reads first, in sentences, and the metric keys they cover."""
    lines, used = [], set()
    held_out = held_out_result(metrics)
    if held_out:
        bal, ece = held_out.balanced_accuracy, held_out.ece
        parts = [f"accuracy <b>{percent(held_out.accuracy)}</b>"]
        parts += [f"balanced accuracy {percent(bal)}"] if bal is not None else []
        parts += [f"calibration error (ECE) {percent(ece)}"] if ece is not None else []
        lines.append(f"On {html.escape(held_out.where)}: " + ", ".join(parts) + ".")
        used |= HELD_OUT_KEYS
    lab = other_lab_result(metrics)
    if lab:
        cells = ", ".join(lab.classes) or "images"
        wrong = ", ".join(f"{k} {n}" for k, n in lab.other_calls.items())
        lines.append(f"On another lab's images ({html.escape(cells)}): <b>{percent(lab.accuracy)}</b> of "
                     f"{lab.n} called right" + (f" (other calls: {html.escape(wrong)})" if wrong else "")
                     + f". {html.escape(lab.source)}")
        used.add("other_lab")
    unlike = metrics.get("unlike_training_test")
    shares = [number(unlike.get(k)) for k in ("share", "accuracy_flagged", "accuracy_rest")] \
        if isinstance(unlike, dict) else [None]
    if all(v is not None for v in shares):
        lines.append(f"Flagged unlike its training images: {percent(shares[0])} of the test images; accuracy on "
                     f"them {percent(shares[1])}, on the rest {percent(shares[2])}.")
        used.add("unlike_training_test")
    speed = metrics.get("latency_ms_2_threads")
    if isinstance(speed, dict) and isinstance(speed.get("predict_ms"), (int, float)):
        network = f" (the network's scores alone: {speed['scores_ms']} ms)" if "scores_ms" in speed else ""
        lines.append(f"Speed: {speed['predict_ms']:.1f} ms per image on 2 CPU threads, from pixels to calibrated "
                     f"probabilities and heatmap{network}.")
    return lines, used


def metrics_sections(metrics: dict[str, Any], labels: list[str]) -> tuple[str, str]:
    """Measured figures as people read them, in two parts: the summary in sentences with the per-class and
    confusion tables (read first), and the further measurements (simulated other labs, technical figures)."""
    if not metrics:
        return "<i>not stated</i>", ""
    summary, used = measured_summary(metrics)
    main, further, lines = [], [], []
    for key, value in metrics.items():
        if key in used:
            continue
        name = html.escape(str(key).replace("_", " "))
        if key == "per_class" and isinstance(value, dict):
            fields = ["precision", "recall", "f1", "support"]
            rows = [[html.escape(str(c))] + [_metric(v.get(f, "")) if f != "support" else html.escape(str(v.get(f, "")))
                                             for f in fields] for c, v in value.items() if isinstance(v, dict)]
            main.insert(0, f"<p><b>Per class</b></p>{table_html(['class', *fields], rows)}")
        elif key == "confusion_matrix" and isinstance(value, list) and len(value) == len(labels):
            # columns by class number: eight class names side by side wrap mid-word in the dialog
            rows = [[f"{i + 1} <b>{html.escape(labels[i])}</b>"] + [html.escape(str(v)) for v in row]
                    for i, row in enumerate(value)]
            main.append(f"<p><b>Confusion matrix</b> (rows: true class, columns: predicted, by class number)</p>"
                        f"{table_html(['', *(str(i + 1) for i in range(len(labels)))], rows)}")
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            fields = sorted({f for v in value.values() for f in v})
            rows = [[html.escape(str(k))] + [_metric(v.get(f, "")) for f in fields] for k, v in value.items()]
            title = "Altered copies of the test images (simulated other labs)" if key == "robustness" else name
            further.append(f"<p><b>{title}</b></p>{table_html(['', *(f.replace('_', ' ') for f in fields)], rows)}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{html.escape(str(k))} {_metric(v)}" for k, v in value.items())
            lines.append(f"{name}: {inner}")
        else:
            lines.append(f"{name}: {_metric(value)}")
    details = f"<p style='color:#4b5563'>{'<br>'.join(lines)}</p>" if lines else ""
    return "<br>".join(summary) + "".join(main), "".join(further) + details


def model_status_text(spec: Any) -> str:
    """One line for the status bar: the model and its measured accuracy, so it is always in sight."""
    metrics = spec.provenance.metrics or {}
    accuracy = number(metrics.get("accuracy"))
    name = f"{spec.name} {spec.version}".strip()
    if accuracy is None:
        return f"{name} · accuracy not stated"
    where = f" ({metrics['n']} test images)" if isinstance(metrics.get("n"), int) else ""
    return f"{name} · measured accuracy {percent(accuracy)}{where}"


def _reference_text(ref: TrainingReference | None) -> str:
    if ref is None:
        return "off: this model carries no statistics of its training images (hemalens-export --reference-folder)"
    return (f"on: an image farther from the called class than {ref.quantile:.1%} of that class's training images "
            f"({ref.images:,} in all; colour, focus, structure size) gets a note")


def model_card_html(info: ModelInfo) -> str:
    """The card as HTML (also what tests read)."""
    spec = info.spec
    prov = spec.provenance
    inp = spec.input
    measured, further = metrics_sections(prov.metrics, spec.labels)
    # what a technician needs first (use, limits, accuracy), then where it came from, then the technical rows
    rows: list[tuple[str, str]] = [
        ("Name", _esc(spec.name)),
        ("Version", _esc(spec.version)),
        ("Description", _esc(spec.description)),
        ("Intended use", _esc(prov.intended_use)),
        ("Measured accuracy", measured),
        ("Limitations", _esc(prov.limitations)),
        ("Further measurements", further or "<i>none</i>"),
        (
            "Labels",
            "<br>".join(
                f"{i + 1}. {html.escape(c.name)} <span style='color:#6b7280'>({html.escape(c.id)})</span>"
                for i, c in enumerate(spec.classes)
            ),
        ),
        ("Training data", _esc(prov.training_data)),
        ("Split", _esc(prov.split)),
        ("Unlike-training check", _esc(_reference_text(spec.training_reference))),
        ("Heatmap", _esc(info.cam_method or "none available for this model")),
        (
            "Input",
            html.escape(
                f"{inp.name}: {inp.layout}, {inp.width}x{inp.height} px, {inp.color_order}, resize {inp.resize}; "
                f"value = (pixel x {inp.scale:.6g} - mean {list(inp.mean)}) / std {list(inp.std)}"
            ),
        ),
        ("Output", html.escape(f"{spec.output.name}: {spec.output.kind}, temperature {spec.output.temperature:g}")),
        ("Licence", _esc(prov.license)),
        ("Citation", _esc(prov.citation)),
        ("Authors", _esc(prov.authors)),
        ("Created", _esc(prov.created)),
        ("Source", _esc(" · ".join(x for x in (prov.source_framework, prov.exporter) if x))),
        (
            "Export checks",
            "<br>".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in prov.verification.items())
            or "<i>not stated</i>",
        ),
        ("Identifier", _esc(spec.id)),
        ("File", _esc(info.path)),
        ("SHA-256", f"<code>{html.escape(info.sha256)}</code>"),
        ("Runs on", _esc(", ".join(info.providers))),
    ]
    banner = ""
    if info.assumed:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in spec.notes)
        banner = (
            "<p style='background:#fff4d6;padding:6px;border:1px solid #e0b84a'><b>This model carries no "
            f"HemaLens metadata.</b> Its preprocessing and labels are assumed:</p><ul>{notes}</ul>"
        )
    body = "".join(
        f"<tr><td style='color:#4b5563;padding:3px 12px 3px 0;vertical-align:top'><b>{k}</b></td>"
        f"<td style='padding:3px 0'>{v}</td></tr>"
        for k, v in rows
    )
    return f"<h2>{html.escape(spec.name)}</h2>{banner}<table>{body}</table>"


class ModelCardDialog(QDialog):
    def __init__(self, info: ModelInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {info.name}")
        self.resize(720, 640)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(model_card_html(info))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
