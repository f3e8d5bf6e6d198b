"""HemaLens benchmark: ``python bench/run.py`` (full, ~15 min on 2 cores) or ``--quick`` (a fast smoke pass).

Prints one table with the five parts of issue 7 — pipeline throughput against raw ONNX Runtime,
PyTorch eager and the model without Grad-CAM; batch-1 latency and batch sizes; GUI launch time and
event-loop stalls during a batch; peak memory on a 10,000-image folder; FLOPs against the machine —
and checks the targets. ``--json`` also saves every raw figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import folder_of, image_set  # noqa: E402
from bench.flops import machine_flops  # noqa: E402
from bench.gui_bench import filter_run, group_run, launch_times, memory_run, probe_env, review_run, stall_runs  # noqa: E402
from bench.measure import measure_model  # noqa: E402
from bench.models import bundled_model_paths, prepare_models  # noqa: E402
from bench.pipeline import BATCH  # noqa: E402
from bench.report import markdown_summary, render  # noqa: E402
from bench.torch_baseline import torch_status  # noqa: E402
from inference.registry import bundled_models_dir  # noqa: E402
from inference.session import available_cpu_count  # noqa: E402

FULL = {"runs": 5, "images": 500, "latency": 100, "gui_images": 1000, "gui_runs": 2, "launch_runs": 3,
        "memory_images": 10000, "matmul": 7, "decisions": 200}
QUICK = {"runs": 2, "images": 48, "latency": 16, "gui_images": 150, "gui_runs": 1, "launch_runs": 1,
         "memory_images": 600, "matmul": 3, "decisions": 20}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 ** 2:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {available_cpu_count()} CPU cores available{mem}, {platform.system()} {platform.release()}"


def software() -> str:
    import cv2
    import numpy
    import onnxruntime

    parts = [f"Python {platform.python_version()}", f"onnxruntime {onnxruntime.__version__}",
             f"numpy {numpy.__version__}", f"opencv {cv2.__version__}"]
    if torch_status() is None:
        import torch

        parts.append(f"torch {torch.__version__}")
    else:
        parts.append("torch not installed")
    return ", ".join(parts)


def busy_note() -> str:
    """Other heavy processes right now (the machine is shared): training jobs and test runs."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return "other processes unknown"
    rows = [ln.split(None, 2) for ln in out if len(ln.split(None, 2)) == 3]
    busy = [f"{cpu}% {args}" for pid, cpu, args in rows if float(cpu) >= 20.0 and int(pid) != os.getpid()]
    return ("busy processes at start: " + "; ".join(b[:80] for b in busy[:3])) if busy else "no other busy process"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small fast pass to check the code paths")
    p.add_argument("--models", nargs="*", type=Path, help="model files (default: the bundled models)")
    p.add_argument("--runs", type=int, help="runs per figure (default 5; --quick 2)")
    p.add_argument("--images", type=int, help="images per model for throughput (default 500)")
    p.add_argument("--gui-images", type=int, help="images in the GUI stall batch (default 1000)")
    p.add_argument("--memory-images", type=int, help="images in the memory folder (default 10000)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    p.add_argument("--torch-images", type=int, help="run PyTorch on only the first N images (it is slow)")
    p.add_argument("--no-gui", action="store_true", help="skip parts 3 and 4 (GUI and memory)")
    p.add_argument("--gui-only", action="store_true", help="only parts 3 and 4 (GUI and memory)")
    p.add_argument("--json", type=Path, help="also write all raw figures here")
    p.add_argument("--markdown", type=Path, help="also write the headline figures as a markdown table here")
    p.add_argument("--scratch", type=Path, help="folder for generated images and links (default: a temp folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key, value in (("runs", args.runs), ("images", args.images), ("gui_images", args.gui_images),
                       ("memory_images", args.memory_images)):
        if value:
            cfg[key] = value
    paths = [p.resolve() for p in args.models] if args.models else bundled_model_paths()
    if not paths:
        print(f"No models to benchmark: {bundled_models_dir()} holds no .onnx file (pass --models).", file=sys.stderr)
        return 2
    models_dir = paths[0].parent
    with tempfile.TemporaryDirectory(prefix="hemalens-bench-") as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                "software": software(), "load_start": os.getloadavg()[0], "busy_note": busy_note(),
                "runs": cfg["runs"], "batch": BATCH, "quick": args.quick, "config": cfg}
        log(f"{meta['date']} {meta['machine']}\n{meta['busy_note']}")
        models = prepare_models(paths, scratch / "models")
        results: dict = {"meta": meta, "models": []}
        if not args.gui_only:
            log("matmul FLOP/s (fresh process)")
            results["matmul_flops"], results["ort_matmul_flops"] = machine_flops(repeats=cfg["matmul"])
        for m in [] if args.gui_only else models:
            images, source = image_set(m.name, cfg["images"], scratch)
            log(f"model {m.name}: {len(images)} images ({source})")
            r = measure_model(m, images, source, runs=cfg["runs"], latency_images=cfg["latency"],
                              use_torch=not args.no_torch, log=log, torch_images=args.torch_images)
            results["models"].append(asdict(r))
        if not args.no_gui:
            env = probe_env(models_dir, scratch)
            gui: dict = {}
            log("GUI launch")
            gui["launch"] = launch_times(env, cfg["launch_runs"])
            folder, gui["folder_note"] = folder_of(cfg["gui_images"], scratch / f"gui{cfg['gui_images']}", scratch)
            log(f"GUI stall runs on {folder}")
            gui["stall"] = stall_runs(folder, env, cfg["gui_runs"], timeout_s=900, step_ms=0)
            gui["stall_stepping"] = stall_runs(folder, env, cfg["gui_runs"], timeout_s=900, step_ms=300)
            log(f"GUI keyboard review, {cfg['decisions']} decisions")
            gui["review"] = review_run(folder, env, cfg["decisions"])
            log("GUI class group at once")
            gui["group"] = group_run(folder, env)
            folder, gui["memory_note"] = folder_of(cfg["memory_images"], scratch / f"mem{cfg['memory_images']}",
                                                   scratch)
            log(f"GUI memory run on {folder}")
            gui["memory"] = memory_run(folder, env, timeout_s=1800)
            log(f"GUI filter typing on {folder}")
            gui["filter"] = filter_run(folder, env)
            results["gui"] = gui
        meta["load_end"] = os.getloadavg()[0]
        meta["busy_note_end"] = busy_note()
        text = render(results)
        print(text, flush=True)
        if args.markdown:
            args.markdown.write_text(markdown_summary(results) + "\n")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**results, "table": text}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
