"""A/B of the batch path's structure on the same images, variants interleaved in one process.

``python bench/overlap_ab.py [--model all4] [--images 500] [--runs 5]`` prints images/s per variant and
each variant's ratio to the old serial loop and to raw ONNX Runtime, taken inside each run (so load
from other jobs on a shared machine hits every variant alike; quote the ratios, not the rates):

- ``serial``: the old benchmark loop — decode a batch, ``predict_batch`` on the all-core session,
  heatmap and overlay, one step after another on one thread;
- ``lanes L x T``: ``inference.batch.classify_paths`` with L lanes, ONNX Runtime on T threads per lane,
  the caller drawing each result's heatmap and overlay (what ``bench.pipeline.run_pipeline`` does);
- ``raw ORT``: ``InferenceSession.run`` per batch of 8 on tensors decoded beforehand, all-core session,
  one run at a time; ``raw ORT lanes``: the same split over one-thread lanes side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import inference.batch as batch_mod  # noqa: E402
from bench.data import image_set  # noqa: E402
from bench.models import bundled_model_paths, short_name  # noqa: E402
from bench.pipeline import BATCH, RawOrt, output_names, predecode  # noqa: E402
from bench.stats import median  # noqa: E402
from inference.images import load_image  # noqa: E402
from inference.overlay import render_overlay  # noqa: E402
from inference.registry import read_spec  # noqa: E402
from inference.session import ModelSession, available_cpu_count, session_options  # noqa: E402


def serial(session: ModelSession, paths: list[Path]) -> int:
    """The pre-lanes loop: everything on the calling thread, one stage after another."""
    for i in range(0, len(paths), BATCH):
        rgbs = [load_image(p).rgb for p in paths[i:i + BATCH]]
        for rgb, pred in zip(rgbs, session.predict_batch(rgbs), strict=True):
            render_overlay(rgb, pred.heatmap())
    return len(paths)


def lanes(session: ModelSession, paths: list[Path], count: int, threads: int) -> int:
    batch_mod.LANE_THREADS = threads
    done = 0
    for r in batch_mod.classify_paths(session, paths, batch_size=BATCH, keep_images=True, lanes=count):
        render_overlay(r.rgb, r.prediction.heatmap())
        done += 1
    return done


def raw_lanes(raw: RawOrt, tensor: np.ndarray, count: int) -> int:
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda i: raw.session.run(raw.outputs, {raw.input: tensor[i:i + BATCH]}),
                      range(0, len(tensor), BATCH)))
    return len(tensor)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/overlap_ab.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all4", help="bundled model short name (all4, aml, pbc) or a file")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--chunk", type=int, default=128, help="images per turn of one variant")
    p.add_argument("--variants", help="comma-separated subset of the variant names")
    args = p.parse_args(argv)
    path = Path(args.model)
    if not path.is_file():
        path = next(m for m in bundled_model_paths() if short_name(read_spec(m), m) == args.model)
    spec = read_spec(path)
    paths, source = image_set(short_name(spec, path), args.images, Path("/tmp/hemalens-bench-ab"))
    cores = available_cpu_count()
    session = ModelSession.load(path)
    tensor = predecode(paths, spec)
    raw = RawOrt(path, spec, output_names(spec))
    raw1 = RawOrt(path, spec, output_names(spec))
    raw1.session = type(raw.session)(str(path), sess_options=session_options(1), providers=["CPUExecutionProvider"])
    variants: dict[str, Callable[[slice], int]] = {
        "serial": lambda s: serial(session, paths[s]),
        f"lanes 1 x {cores}": lambda s: lanes(session, paths[s], 1, cores),
        f"lanes {cores} x 1": lambda s: lanes(session, paths[s], cores, 1),
        f"lanes {cores} x {cores}": lambda s: lanes(session, paths[s], cores, cores),
        "raw ORT": lambda s: raw.run(tensor[s]),
        "raw ORT lanes": lambda s: raw_lanes(raw1, tensor[s], cores),
    }
    if args.variants:
        keep = [v.strip() for v in args.variants.split(",")]
        variants = {k: v for k, v in variants.items() if k in keep or k in ("serial", "raw ORT")}
    print(f"{path.name}: {len(paths)} images ({source}), {cores} cores, batch {BATCH}, {args.runs} runs, "
          f"chunks of {args.chunk}", flush=True)
    for fn in variants.values():
        fn(slice(0, 2 * BATCH))
    names = list(variants)
    rates: dict[str, list[float]] = {k: [] for k in names}
    slices = [slice(i, min(i + args.chunk, len(paths))) for i in range(0, len(paths), args.chunk)]
    for r in range(args.runs):
        spent, done = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
        for k, sl in enumerate(slices):
            turn = (r + k) % len(names)
            for name in names[turn:] + names[:turn]:
                time.sleep(0.005)
                start = time.perf_counter()
                done[name] += variants[name](sl)
                spent[name] += time.perf_counter() - start
        for name in names:
            rates[name].append(done[name] / spent[name])
        print(f"run {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    ceiling = [max(a, b) for a, b in zip(rates["raw ORT"], rates.get("raw ORT lanes", rates["raw ORT"]),
                                         strict=True)]
    print(f"{'variant':16s} {'img/s':>7s} {'÷ serial':>9s} {'÷ raw ORT':>10s} {'÷ best raw':>11s}  (medians of per-run "
          "ratios)")
    for name in names:
        def ratio(base: list[float], values: list[float] = rates[name]) -> float:
            return median([a / b for a, b in zip(values, base, strict=True)])
        print(f"{name:16s} {median(rates[name]):7.1f} {ratio(rates['serial']):9.2f} {ratio(rates['raw ORT']):10.2f} "
              f"{ratio(ceiling):11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
