"""Parts 1, 2 and 5 of the benchmark for one model, in this process: throughput of each variant
over several interleaved runs, batch-1 latency and the batch-size sweep, and MACs per image."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.flops import count_macs
from bench.models import BenchModel
from bench.pipeline import (
    BATCH,
    RawOrt,
    lane_raw_ort,
    output_names,
    pipeline_breakdown,
    pipeline_latencies,
    predecode,
    run_pipeline,
)
from bench.stats import median, percentile
from bench.torch_baseline import TorchRunner, load_checkpoint
from inference.batch import lane_count
from inference.session import ModelSession

SWEEP = (1, 2, 4, 8, 16, 32)
# Images per turn of one variant (a multiple of the batch size). Each pipeline turn starts its lanes
# afresh, so a turn must be long against one chunk's decoding or the figure undercounts a whole folder.
CHUNK = 128


@dataclass
class ModelResult:
    """Everything measured for one model; rates are images/s per run (same index = same run)."""

    name: str
    file: str
    images: int
    image_source: str
    input_size: str
    rates: dict[str, list[float]] = field(default_factory=dict)
    torch_note: str = ""
    torch_agreement: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    breakdown_ms: dict[str, float] = field(default_factory=dict)
    sweep: dict[int, float] = field(default_factory=dict)
    macs: dict[str, int] = field(default_factory=dict)


def _settle() -> None:
    """Let the previous variant's worker threads go idle (OpenMP spins a little) before the next is timed."""
    time.sleep(0.005)


def measure_model(model: BenchModel, paths: list[Path], source: str, *, runs: int, latency_images: int,
                  use_torch: bool, log: Callable[[str], None], torch_images: int | None = None) -> ModelResult:
    """All part-1/2/5 figures for one model; PyTorch runs on the first ``torch_images`` images (default all)."""
    spec = model.spec
    result = ModelResult(model.name, model.path.name, len(paths), source, f"{spec.input.width}x{spec.input.height}")
    session = ModelSession.load(model.path)
    no_cam = ModelSession.load(model.no_cam_path)
    tensor = predecode(paths, spec)
    raw = RawOrt(model.path, spec, output_names(spec))
    raw_lanes = lane_raw_ort(model.path, spec, output_names(spec))
    lanes = lane_count(session)
    raw_scores = RawOrt(model.no_cam_path, spec, [spec.output.name])
    n_torch = len(paths)
    runner = None
    if use_torch:
        tmodel, why = load_checkpoint(model.name)
        if tmodel is None:
            result.torch_note = why
        else:
            runner = TorchRunner(tmodel)
            n_torch = min(len(paths), torch_images or len(paths))
            result.torch_note = f"weights from {tmodel.source}; {n_torch} images"
            result.torch_agreement = _agreement(runner, raw_scores, tensor[:64])
    else:
        result.torch_note = "skipped (--no-torch)"
    # Each run walks the images in chunks; every variant does each chunk in turn (order rotated per chunk),
    # so a load change on this shared machine hits all variants alike and the per-run ratios stay fair.
    variants: list[tuple[str, Callable[[slice], int], int]] = [
        ("pipeline", lambda s: run_pipeline(session, paths[s]), len(paths)),
        ("no_cam_pipeline", lambda s: run_pipeline(no_cam, paths[s], cam=False), len(paths)),
        ("raw_ort", lambda s: raw.run(tensor[s]), len(paths)),
        ("raw_ort_lanes", lambda s: raw_lanes.run_lanes(tensor[s], lanes), len(paths)),
        ("raw_ort_scores_only", lambda s: raw_scores.run(tensor[s]), len(paths)),
    ]
    if runner is not None:
        variants += [
            ("torch_pipeline", lambda s: runner.pipeline(paths[s], spec, batch=BATCH), n_torch),
            ("torch_infer", lambda s: runner.infer(tensor[s], batch=BATCH), n_torch),
        ]
    warm = slice(0, 16)
    for _, fn, _ in variants:
        fn(warm)
    for key, _, _ in variants:
        result.rates[key] = []
    slices = [slice(i, min(i + CHUNK, len(paths))) for i in range(0, len(paths), CHUNK)]
    for r in range(runs):
        spent = dict.fromkeys(result.rates, 0.0)
        done = dict.fromkeys(result.rates, 0)
        for k, sl in enumerate(slices):
            turn = (r + k) % len(variants)
            for key, fn, limit in variants[turn:] + variants[:turn]:
                if sl.start >= limit:
                    continue
                part = slice(sl.start, min(sl.stop, limit))
                _settle()
                start = time.perf_counter()
                done[key] += fn(part)
                spent[key] += time.perf_counter() - start
        for key in result.rates:
            result.rates[key].append(done[key] / spent[key])
        log(f"  {model.name} run {r + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in result.rates.items()))

    _settle()
    result.breakdown_ms = pipeline_breakdown(session, paths)
    # Part 2: one image at a time, file in -> overlay out; raw ORT batch 1; batch-size sweep on raw ORT.
    _settle()
    lat = pipeline_latencies(session, paths[:latency_images])
    raw_lat = raw.latencies(tensor, latency_images)
    result.latency_ms = {
        "pipeline_median": median(lat) * 1000, "pipeline_p95": percentile(lat, 95) * 1000,
        "pipeline_rate_b1": len(lat) / sum(lat),
        "raw_ort_median": median(raw_lat) * 1000, "raw_ort_p95": percentile(raw_lat, 95) * 1000,
    }
    sweep_tensor = tensor[: max(64, min(len(tensor), 256))]
    sweep: dict[int, list[float]] = {b: [] for b in SWEEP}
    for rep in range(max(3, runs)):  # batch sizes interleaved, rotated each round: load changes hit all alike
        for b in SWEEP[rep % len(SWEEP):] + SWEEP[:rep % len(SWEEP)]:
            _settle()
            start = time.perf_counter()
            raw.run(sweep_tensor, batch=b)
            sweep[b].append(len(sweep_tensor) / (time.perf_counter() - start))
    result.sweep = {b: median(v) for b, v in sweep.items()}
    counted = count_macs(model.path, spec)
    result.macs = {"inference": counted.inference, "gradcam": counted.gradcam, "unknown_nodes": counted.unknown_nodes}
    return result


def _agreement(runner: TorchRunner, raw_scores: RawOrt, tensor: np.ndarray) -> dict[str, Any]:
    """How closely PyTorch and ONNX Runtime agree on the same inputs: proof the weights are the same."""
    ort_logits = raw_scores.session.run([raw_scores.outputs[0]], {raw_scores.input: tensor})[0].reshape(len(tensor), -1)
    torch_logits = runner.logits(tensor).reshape(len(tensor), -1)
    return {
        "max_abs_logit_diff": float(np.abs(ort_logits - torch_logits).max()),
        "top1_agreement": float((ort_logits.argmax(1) == torch_logits.argmax(1)).mean()),
        "images": len(tensor),
    }
