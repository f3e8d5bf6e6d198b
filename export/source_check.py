"""The check every framework export passes before it is written: the ONNX model against its source.

The PyTorch and Keras exporters differ only in how their framework computes the reference (autograd or
GradientTape at a layer, or, for a TorchScript file or a SavedModel that has no layers to hook, just the
scores, with the Grad-CAM gradient then checked against finite differences). The rest is here, once: the
check images, running the exported graph, a yes/no model's two classes, and the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from export.errors import ExportError
from export.gradcam_graph import GradCamGraphInfo
from export.one_score import OneScoreHead
from export.onnx_tools import finite_difference_check, run_with_intermediates
from export.verify import Reference, compare, compare_scores, merge, ort_session, run_outputs
from inference.contract import ModelSpec
from inference.preprocess import preprocess_batch

# (batch, ONNX target activations as NCHW, the ONNX scores before a softmax or sigmoid or None) -> reference, layer
ReferenceFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], "tuple[Reference, str]"]


def check_batches(spec: ModelSpec, sample_images: list[np.ndarray] | None, random_images: int) -> list[np.ndarray]:
    """Preprocessed check batches: random pixels (seeded), then the given real images if any."""
    rng = np.random.default_rng(0)
    h, w = spec.input.height, spec.input.width
    noise = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(random_images)]
    batches = [preprocess_batch(noise, spec.input)[0]]
    if sample_images:
        for img in sample_images:
            if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ExportError("sample_images must be RGB uint8 arrays of shape (H, W, 3)")
        batches.append(preprocess_batch(list(sample_images), spec.input)[0])
    return batches


def verify_against_source(augmented: onnx.ModelProto, info: GradCamGraphInfo, input_name: str,
                          batches: list[np.ndarray], head: OneScoreHead | None, *,
                          reference: ReferenceFn | None, source_scores: Callable[[np.ndarray], np.ndarray],
                          without_layers: str) -> tuple[dict[str, Any], str]:
    """Figures of the exported model against its source on ``batches``, and the layer the reference used.

    ``reference`` computes the framework's own Grad-CAM; without it (no layers to hook) ``source_scores``
    gives the framework's output and the gradient is checked by finite differences, described by
    ``without_layers``. Raises ExportError when the graph is invalid or its batch dimension is broken.
    """
    try:
        onnx.checker.check_model(augmented, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises ValidationError and shape inference errors
        raise ExportError(f"onnx.checker rejected the exported model: {exc}") from None
    session = ort_session(augmented)
    before_squash = info.logits if info.logits != info.scores_output else None  # the scores before a softmax
    if head is not None and head.had_sigmoid:
        before_squash = head.logit  # ... or before a yes/no model's sigmoid
    figures, layer = [], ""
    for batch in batches:
        feeds = {input_name: batch}
        out = run_with_intermediates(augmented, feeds, [before_squash]) if before_squash else run_outputs(
            session, feeds)
        scores = head.comparable(out[info.scores_output]) if head else out[info.scores_output]
        single = run_outputs(session, {input_name: batch[:1]})
        if not np.allclose(single[info.weights][0], out[info.weights][0], rtol=1e-4, atol=1e-6):
            raise ExportError("the exported model gives different Grad-CAM weights for batch size 1 and "
                              f"{len(batch)}; the dynamic batch is broken")
        if reference is None:
            ref_scores = source_scores(batch)
            result = compare_scores(scores, head.two_classes(ref_scores) if head else ref_scores)
            result["fd_max_rel_error"] = finite_difference_check(augmented, info, feeds)
            figures.append(result)
            layer = without_layers
            continue
        logits = out[before_squash] if before_squash else None
        if logits is not None and head is not None:
            logits = logits.reshape(-1, 1)  # a squeezed score (N,) is found as the (N, 1) layer output before it
        ref, layer = reference(batch, out[info.activations], logits)
        if head is not None:
            ref = Reference(head.two_classes(ref.scores), ref.activations, ref.weights)
        figures.append(compare(scores, out[info.activations], out[info.weights], ref))
    merged: dict[str, Any] = merge(figures)
    merged["onnx_checker"] = "passed"
    return merged, layer
