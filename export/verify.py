"""Compare an exported model with its source: score agreement, top-1 agreement, Grad-CAM agreement.

The figures go into ``provenance.verification`` and decide whether the exporter writes the file.
Framework code (PyTorch, TensorFlow) computes the reference; this module only compares arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from export.errors import VerificationError
from inference.cam import weighted_cam

MAX_ABS_SCORE_DIFF = 1e-4
MIN_CAM_CORRELATION = 0.99
MAX_FD_REL_ERROR = 1e-2


@dataclass(frozen=True)
class Reference:
    """What the source framework computed for a batch: scores, target activations, Grad-CAM weights."""

    scores: np.ndarray  # (N, C) as the exported output gives them (logits or probabilities)
    activations: np.ndarray  # (N, K, h, w)
    weights: np.ndarray  # (N, C, K)


def ort_session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_outputs(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; two flat maps that agree count as 1.0, a flat map against a varying one as 0."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    sa, sb = a.std(), b.std()
    if sa < 1e-12 or sb < 1e-12:
        return 1.0 if np.allclose(a, b, atol=1e-6) else 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def compare(scores: np.ndarray, activations: np.ndarray, weights: np.ndarray, ref: Reference) -> dict[str, float]:
    """The verification figures for one batch (ONNX arrays against the framework reference)."""
    n = scores.shape[0]
    score_diff = float(np.max(np.abs(scores.astype(np.float64) - ref.scores.astype(np.float64))))
    top1 = float(np.mean(np.argmax(scores, axis=1) == np.argmax(ref.scores, axis=1)))
    heat, raw = [], []
    for i in range(n):
        top = int(np.argmax(ref.scores[i]))
        heat.append(_correlation(weighted_cam(activations[i], weights[i, top]),
                                 weighted_cam(ref.activations[i], ref.weights[i, top])))
        for c in range(weights.shape[1]):
            raw.append(_correlation(np.tensordot(weights[i, c], activations[i], axes=1),
                                    np.tensordot(ref.weights[i, c], ref.activations[i], axes=1)))
    scale = float(np.max(np.abs(ref.weights))) or 1.0
    return {
        "images": n,
        "max_abs_score_diff": score_diff,
        "top1_agreement": top1,
        "cam_correlation": float(min(heat)),
        "cam_correlation_all_classes_raw": float(min(raw)),
        "max_rel_weight_diff": float(np.max(np.abs(weights - ref.weights)) / scale),
    }


def compare_scores(scores: np.ndarray, ref_scores: np.ndarray) -> dict[str, float]:
    """Score figures alone, for sources whose intermediate activations cannot be reached."""
    return {
        "images": scores.shape[0],
        "max_abs_score_diff": float(np.max(np.abs(scores.astype(np.float64) - ref_scores.astype(np.float64)))),
        "top1_agreement": float(np.mean(np.argmax(scores, axis=1) == np.argmax(ref_scores, axis=1))),
    }


def merge(figures: list[dict[str, float]]) -> dict[str, float]:
    """Worst case over several batches (random and real images)."""
    out: dict[str, float] = {}
    for key in ("max_abs_score_diff", "max_rel_weight_diff", "fd_max_rel_error"):
        if all(key in f for f in figures):
            out[key] = max(f[key] for f in figures)
    for key in ("cam_correlation", "cam_correlation_all_classes_raw"):
        if all(key in f for f in figures):
            out[key] = min(f[key] for f in figures)
    total = sum(f["images"] for f in figures)
    out["top1_agreement"] = sum(f["top1_agreement"] * f["images"] for f in figures) / total
    out["images"] = int(total)
    return out


def check(figures: dict[str, float]) -> None:
    """Raise VerificationError naming every figure outside its limit."""
    problems = []
    if not figures["max_abs_score_diff"] <= MAX_ABS_SCORE_DIFF:
        problems.append(f"scores differ by {figures['max_abs_score_diff']:.3g} (limit {MAX_ABS_SCORE_DIFF:g})")
    if figures["top1_agreement"] < 1.0:
        problems.append(f"top-1 class agrees on only {figures['top1_agreement']:.1%} of the check images")
    if "cam_correlation" in figures and not figures["cam_correlation"] >= MIN_CAM_CORRELATION:
        problems.append(f"Grad-CAM heatmap correlation {figures['cam_correlation']:.4f} "
                        f"(limit {MIN_CAM_CORRELATION})")
    if "fd_max_rel_error" in figures and not figures["fd_max_rel_error"] <= MAX_FD_REL_ERROR:
        problems.append(f"Grad-CAM weights differ from finite differences by {figures['fd_max_rel_error']:.3g} "
                        f"(limit {MAX_FD_REL_ERROR:g})")
    if "cam_correlation" not in figures and "fd_max_rel_error" not in figures:
        problems.append("the Grad-CAM outputs were not checked")
    if problems:
        raise VerificationError("; ".join(problems), figures)


def format_figures(figures: dict[str, float]) -> str:
    parts = [f"verification on {figures['images']} images: max |score diff| {figures['max_abs_score_diff']:.2e}",
             f"top-1 agreement {figures['top1_agreement']:.1%}"]
    if "cam_correlation" in figures:
        parts.append(f"heatmap correlation {figures['cam_correlation']:.6f} (all classes, raw maps: "
                     f"{figures['cam_correlation_all_classes_raw']:.6f})")
        parts.append(f"max relative Grad-CAM weight diff {figures['max_rel_weight_diff']:.2e}")
    if "fd_max_rel_error" in figures:
        parts.append(f"Grad-CAM weights vs finite differences: max relative error {figures['fd_max_rel_error']:.2e}")
    return ", ".join(parts)
