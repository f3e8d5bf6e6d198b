"""The measured workloads on ONNX Runtime: the HemaLens pipeline and raw ONNX Runtime.

The pipeline is what ``hemalens classify --cam-dir`` does, through the real batch path: files in,
``inference.batch.classify_paths`` (decode, preprocess, run, calibrate, on one lane per core side by
side), and for each result in order the Grad-CAM heatmap at the original size (``Prediction.heatmap``)
and the coloured overlay (``render_overlay``). Raw ONNX Runtime is ``InferenceSession.run`` per batch on
tensors decoded and preprocessed beforehand, the ceiling for any pipeline around the same model: one
run at a time on the all-core session, and (``RawOrt.run_lanes``) the same lane split as the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference.batch import LANE_THREADS, classify_paths
from inference.contract import ModelSpec
from inference.images import load_image
from inference.overlay import render_overlay
from inference.preprocess import preprocess_batch
from inference.session import ModelSession, session_options

BATCH = 8  # the same as inference.batch.DEFAULT_BATCH_SIZE (the CLI's batch size)


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_pipeline(session: ModelSession, paths: Sequence[Path], *, batch: int = BATCH, cam: bool = True) -> int:
    """Every image through ``classify_paths``, with ``cam`` also its Grad-CAM overlay; returns how many."""
    done = 0
    for result in classify_paths(session, paths, batch_size=batch, keep_images=cam):
        if result.prediction is None:
            raise RuntimeError(f"{result.path.name}: {result.error}")
        if cam:
            heat = result.prediction.heatmap()
            if heat is None or result.rgb is None:
                raise RuntimeError(f"{session.path.name} gave no heatmap")
            render_overlay(result.rgb, heat)
        done += 1
    return done


def pipeline_breakdown(session: ModelSession, paths: Sequence[Path], *, batch: int = BATCH) -> dict[str, float]:
    """Milliseconds per image in each stage, run one stage after another on one thread (where the time goes)."""
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

    def __init__(self, path: Path, spec: ModelSpec, outputs: list[str], *, threads: int | None = None) -> None:
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.input = spec.input.name
        self.outputs = outputs

    def run(self, tensor: np.ndarray, *, batch: int = BATCH) -> int:
        for i in range(0, len(tensor), batch):
            self.session.run(self.outputs, {self.input: tensor[i:i + batch]})
        return len(tensor)

    def run_lanes(self, tensor: np.ndarray, lanes: int, *, batch: int = BATCH) -> int:
        """Batches spread over ``lanes`` threads calling ``run`` side by side (as classify_paths runs them)."""
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            for _ in pool.map(lambda i: self.session.run(self.outputs, {self.input: tensor[i:i + batch]}),
                              range(0, len(tensor), batch)):
                pass
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


def lane_raw_ort(path: Path, spec: ModelSpec, outputs: list[str]) -> RawOrt:
    """Raw ONNX Runtime set up like one batch lane: ``inference.batch.LANE_THREADS`` threads per session."""
    return RawOrt(path, spec, outputs, threads=LANE_THREADS)


def output_names(spec: ModelSpec) -> list[str]:
    """Scores plus the Grad-CAM outputs (what ModelSession fetches for a Grad-CAM model)."""
    names = [spec.output.name]
    if spec.gradcam is not None:
        names += [spec.gradcam.activations, spec.gradcam.weights]
    return names
