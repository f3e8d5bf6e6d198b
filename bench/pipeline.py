"""The measured workloads on ONNX Runtime: the HemaLens pipeline and raw ONNX Runtime.

The pipeline is what the app does per image, through the public core API: decode the file
(``load_image``), preprocess + run + calibrate (``ModelSession.predict_batch``), the Grad-CAM heatmap
at the original size (``Prediction.heatmap``) and the coloured overlay (``render_overlay``), in
batches like ``classify_paths``. Raw ONNX Runtime is one ``InferenceSession.run`` per batch on
tensors decoded and preprocessed beforehand: the ceiling for any pipeline around the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference.contract import ModelSpec
from inference.images import load_image
from inference.overlay import render_overlay
from inference.preprocess import preprocess_batch
from inference.session import ModelSession, session_options

BATCH = 8  # the same as inference.batch.DEFAULT_BATCH_SIZE (the CLI's batch size)


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_pipeline(session: ModelSession, paths: Sequence[Path], *, batch: int = BATCH, cam: bool = True) -> int:
    """Decode, classify and (with ``cam``) draw the Grad-CAM overlay for every image; returns how many."""
    done = 0
    for group in chunks(paths, batch):
        rgbs = [load_image(p).rgb for p in group]
        preds = session.predict_batch(rgbs)
        if cam:
            for rgb, pred in zip(rgbs, preds, strict=True):
                heat = pred.heatmap()
                if heat is None:
                    raise RuntimeError(f"{session.path.name} gave no heatmap")
                render_overlay(rgb, heat)
        done += len(preds)
    return done


def pipeline_breakdown(session: ModelSession, paths: Sequence[Path], *, batch: int = BATCH) -> dict[str, float]:
    """Milliseconds per image spent in each stage of one pipeline pass (where the time goes)."""
    import time

    spent = {"decode": 0.0, "predict_batch": 0.0, "heatmap": 0.0, "overlay": 0.0}
    for group in chunks(paths, batch):
        t0 = time.perf_counter()
        rgbs = [load_image(p).rgb for p in group]
        t1 = time.perf_counter()
        preds = session.predict_batch(rgbs)
        t2 = time.perf_counter()
        heats = [pred.heatmap() for pred in preds]
        t3 = time.perf_counter()
        for rgb, heat in zip(rgbs, heats, strict=True):
            render_overlay(rgb, heat)
        t4 = time.perf_counter()
        for key, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[key] += dt
    return {k: v * 1000 / max(len(paths), 1) for k, v in spent.items()}


def pipeline_latencies(session: ModelSession, paths: Sequence[Path]) -> list[float]:
    """Seconds per image, one at a time (batch 1): file in, overlay out."""
    import time

    out = []
    for p in paths:
        start = time.perf_counter()
        rgb = load_image(p).rgb
        pred = session.predict(rgb)
        heat = pred.heatmap()
        if heat is not None:
            render_overlay(rgb, heat)
        out.append(time.perf_counter() - start)
    return out


def predecode(paths: Sequence[Path], spec: ModelSpec) -> np.ndarray:
    """All images decoded and preprocessed once into one float32 tensor (for the raw runs)."""
    tensor, _ = preprocess_batch([load_image(p).rgb for p in paths], spec.input)
    return tensor


class RawOrt:
    """A plain ONNX Runtime session with HemaLens's session options, fetching ``outputs``."""

    def __init__(self, path: Path, spec: ModelSpec, outputs: list[str]) -> None:
        self.session = ort.InferenceSession(str(path), sess_options=session_options(),
                                            providers=["CPUExecutionProvider"])
        self.input = spec.input.name
        self.outputs = outputs

    def run(self, tensor: np.ndarray, *, batch: int = BATCH) -> int:
        for i in range(0, len(tensor), batch):
            self.session.run(self.outputs, {self.input: tensor[i:i + batch]})
        return len(tensor)

    def latencies(self, tensor: np.ndarray, count: int) -> list[float]:
        import time

        out = []
        for i in range(count):
            x = tensor[i % len(tensor):i % len(tensor) + 1]
            start = time.perf_counter()
            self.session.run(self.outputs, {self.input: x})
            out.append(time.perf_counter() - start)
        return out


def output_names(spec: ModelSpec) -> list[str]:
    """Scores plus the Grad-CAM outputs (what ModelSession fetches for a Grad-CAM model)."""
    names = [spec.output.name]
    if spec.gradcam is not None:
        names += [spec.gradcam.activations, spec.gradcam.weights]
    return names
