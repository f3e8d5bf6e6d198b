"""The one table ``bench/run.py`` prints: all five parts and the targets, from the results dict.

Ratios are taken inside each run (same run, same machine state) and their median is shown, with
the min-max over runs in brackets.
"""

from __future__ import annotations

import math
from typing import Any

from bench.stats import median, percentile, spread

TARGETS = {
    "pipeline_vs_raw": 0.8,
    "pipeline_vs_torch": 2.0,
    "gradcam_overhead": 0.10,
    "gui_stall_ms": 50.0,
    "rss_mib": 600.0,
}


def per_run_ratio(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=False) if y]


def fmt(value: float, spec: str = ".1f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def with_range(values: list[float], spec: str = ".1f") -> str:
    if not values:
        return "n/a"
    lo, hi = spread(values)
    return f"{fmt(median(values), spec)} [{fmt(lo, spec)}-{fmt(hi, spec)}]"


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *[line(r) for r in rows]]


def best_raw(rates: dict[str, list[float]]) -> list[float]:
    """Raw ONNX Runtime per run: the faster of one run at a time on all cores and one-thread lanes side by side."""
    lanes = rates.get("raw_ort_lanes") or []
    return [max(a, b) for a, b in zip(rates["raw_ort"], lanes, strict=True)] if lanes else rates["raw_ort"]


def model_ratios(m: dict[str, Any]) -> dict[str, list[float]]:
    r = m["rates"]
    out = {
        "pipeline_vs_raw": per_run_ratio(r["pipeline"], best_raw(r)),
        # overhead = time(with Grad-CAM) / time(without) - 1 = rate(without) / rate(with) - 1
        "gradcam_overhead": [x - 1 for x in per_run_ratio(r["no_cam_pipeline"], r["pipeline"])],
        "gradcam_graph_overhead": [x - 1 for x in per_run_ratio(r["raw_ort_scores_only"], r["raw_ort"])],
    }
    if "torch_pipeline" in r:
        out["pipeline_vs_torch"] = per_run_ratio(r["pipeline"], r["torch_pipeline"])
        out["ort_vs_torch_infer"] = per_run_ratio(r["raw_ort_scores_only"], r["torch_infer"])
    return out


def _ms_list(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values) + " ms"


def _held(flt: dict[str, Any]) -> str:
    """What the filter probe says about keystrokes held for a pause in typing."""
    held = [f"{v} {flt[f'{v}_pause_ms']:.0f} ms" for v in ("table", "gallery") if flt.get(f"{v}_pause_ms") is not None]
    if not held:
        return " (every keystroke filtered at once)"
    return f" (a slow pass held the next keys; the pause in typing then filtered in {', '.join(held)})"


def render(res: dict[str, Any]) -> str:
    meta = res["meta"]
    out = [
        f"HemaLens benchmark — {meta['date']} — {meta['machine']}",
        f"{meta['software']}",
        f"Load average (1 min) {meta['load_start']:.2f} at start, {meta.get('load_end', math.nan):.2f} at end; "
        f"{meta['busy_note']}",
        f"{meta['runs']} runs per figure, interleaved; median [min-max over runs]. Batch {meta['batch']} unless "
        "stated. Mode: " + ("--quick (smoke pass, not for quoting)" if meta["quick"] else "full"),
        "",
        "1. Throughput, images/s — pipeline = decode + preprocess + ONNX Runtime + Grad-CAM + overlay",
    ]
    rows = []
    for m in res["models"]:
        r, q = m["rates"], model_ratios(m)
        rows.append([
            m["name"], f"{m['images']} {m['image_source']}", with_range(r["pipeline"]), with_range(best_raw(r)),
            with_range(q["pipeline_vs_raw"], ".2f"),
            with_range(r.get("torch_pipeline", [])), with_range(q.get("pipeline_vs_torch", []), ".2f"),
            with_range(r["no_cam_pipeline"]), with_range([x * 100 for x in q["gradcam_overhead"]], "+.1f"),
        ])
    out += table(rows, ["model", "images", "pipeline", "(a) raw ORT, best", "pipe/raw ≥0.8", "(b) PyTorch pipe",
                        "pipe/PyTorch ≥2", "(c) no-CAM pipe", "Grad-CAM cost % ≤10"])
    out.append("")
    rows = []
    for m in res["models"]:
        r, q = m["rates"], model_ratios(m)
        agree = m.get("torch_agreement") or {}
        agree_txt = (f"max |Δlogit| {agree['max_abs_logit_diff']:.1e}, top-1 {agree['top1_agreement'] * 100:.0f}% "
                     f"on {agree['images']}") if agree else m["torch_note"]
        rows.append([m["name"], f"{with_range(r['raw_ort'])} / {with_range(r.get('raw_ort_lanes', []))}",
                     with_range(r["raw_ort_scores_only"]),
                     with_range([x * 100 for x in q["gradcam_graph_overhead"]], "+.1f"),
                     with_range(r.get("torch_infer", [])), with_range(q.get("ort_vs_torch_infer", []), ".2f"),
                     agree_txt])
    out += table(rows, ["model", "raw ORT: one run at a time / lanes", "raw ORT scores only",
                        "Grad-CAM outputs in graph %", "PyTorch eager infer",
                        "ORT/PyTorch infer", "PyTorch vs ORT (same inputs)"])
    for m in res["models"]:
        b = m.get("breakdown_ms") or {}
        if b:
            total = sum(b.values())
            ort_ms = 1000 / median(m["rates"]["raw_ort"])  # the same all-core session the breakdown used
            out.append(f"{m['name']} pipeline stages one after another on one thread, ms/image ({total:.2f} in all, "
                       f"one pass): decode {b['decode']:.2f}, "
                       f"predict_batch {b['predict_batch']:.2f} (raw ORT alone {ort_ms:.2f}; the rest is "
                       f"preprocess, quality notes, calibration), Grad-CAM heatmap {b['heatmap']:.2f}, "
                       f"overlay {b['overlay']:.2f}")
    notes = [f"{m['name']}: {m['torch_note']}" for m in res["models"] if m.get("torch_note")]
    if notes:
        out.append("PyTorch eager (channels-last, all cores; Grad-CAM by autograd) — " + "; ".join(notes))
    out += ["", "2. Latency, one image at a time (file in -> overlay out), and batch size (raw ORT images/s)"]
    rows = []
    for m in res["models"]:
        lat, sw = m["latency_ms"], {int(k): v for k, v in m["sweep"].items()}
        best = max(sw, key=sw.get)
        gain = sw[best] / sw[1] if sw.get(1) else math.nan
        verdict = f"yes: batch {best} is {gain:.2f}x batch 1" if gain >= 1.1 else f"no (best {gain:.2f}x batch 1)"
        rows.append([m["name"], f"{fmt(lat['pipeline_median'])} / {fmt(lat['pipeline_p95'])}",
                     f"{fmt(lat['raw_ort_median'], '.2f')} / {fmt(lat['raw_ort_p95'], '.2f')}",
                     fmt(lat["pipeline_rate_b1"]), " ".join(f"{b}:{fmt(v, '.0f')}" for b, v in sorted(sw.items())),
                     verdict])
    out += table(rows, ["model", "pipeline ms med/p95", "raw ORT ms med/p95", "pipeline b1 img/s",
                        "raw ORT img/s by batch", "batching helps?"])
    out += ["", *render_gui(res.get("gui", {})), "", *render_limit(res)]
    out += ["", "Targets", *render_targets(res)]
    return "\n".join(out)


def render_gui(gui: dict[str, Any]) -> list[str]:
    out = ["3. GUI (real main window, offscreen Qt, fresh process each)"]
    if not gui:
        return [*out, "   not measured (--no-gui)", "4. Memory", "   not measured (--no-gui)"]
    launch = [x for x in gui.get("launch", []) if "first_paint" in x]
    errors = [x["error"] for x in gui.get("launch", []) if "error" in x]
    if launch:
        out.append(f"   launch -> first window painted: {with_range([x['first_paint'] for x in launch], '.2f')} s; "
                   f"-> model ready: {with_range([x.get('model_ready', math.nan) for x in launch], '.2f')} s "
                   f"({len(launch)} launches)")
    for key, what in (("stall", "nothing else happening"), ("stall_stepping", "a user stepping to the next image "
                                                                         "every 300 ms (image view + heatmap)")):
        stalls = [x for x in gui.get(key, []) if "stalls_ms" in x]
        errors += [x["error"] for x in gui.get(key, []) if "error" in x]
        if stalls:
            worst = [max(x["stalls_ms"], default=0.0) for x in stalls]
            p99 = [percentile(x["stalls_ms"], 99) for x in stalls]
            idle = [max(x["idle_stalls_ms"], default=0.0) for x in stalls]
            rate = [x["classified"] / x["seconds"] for x in stalls if x["seconds"]]
            out.append(f"   {stalls[0]['images']}-image batch, {what}: longest stall {with_range(worst)} ms, "
                       f"p99 {with_range(p99)} ms (5 ms heartbeat; idle window before it: longest "
                       f"{with_range(idle)} ms); batch {with_range(rate)} images/s; {len(stalls)} runs")
    rev = gui.get("review") or {}
    if "saved_ms" in rev:
        out.append(f"   keyboard review, {rev['decisions']} x Enter (confirm, then the next image): decision saved "
                   f"(committed, fsync) median {median(rev['saved_ms']):.1f} ms, p95 "
                   f"{percentile(rev['saved_ms'], 95):.1f} ms; next image with its heatmap on screen median "
                   f"{median(rev['next_shown_ms']):.0f} ms, p95 {percentile(rev['next_shown_ms'], 95):.0f} ms "
                   f"(review database on {rev['db_filesystem']})")
    elif "error" in rev:
        errors.append(rev["error"])
    grp = gui.get("group") or {}
    if "enter_ms" in grp:
        out.append(f"   class group at once, {grp['group']} thumbnails of {grp['section']} (one transaction, fsync): "
                   f"Enter {grp['enter_ms']:.0f} ms, Ctrl+Z {grp['undo_ms']:.0f} ms, class key "
                   f"{grp['class_key_ms']:.0f} ms")
    elif "error" in grp:
        errors.append(grp["error"])
    if gui.get("folder_note"):
        out.append(f"   batch folder: {gui['folder_note']}")
    flt = gui.get("filter") or {}
    if "gallery_key_ms" in flt:
        out.append(f"   filter bar on {flt['images']:,} images, per keystroke of {flt['text']!r}: table "
                   f"{_ms_list(flt['table_key_ms'][:-1])}, gallery {_ms_list(flt['gallery_key_ms'][:-1])}"
                   + _held(flt))
    elif "error" in flt:
        errors.append(flt["error"])
    out.append("4. Memory (fresh process, real main window)")
    mem = gui.get("memory") or {}
    if "rss_peak_mib" in mem:
        out.append(f"   {mem['images']}-image folder opened and classified ({gui.get('memory_note', '')}): peak RSS "
                   f"{mem['rss_peak_mib']:.0f} MiB (window with model loaded {mem['rss_ready_mib']:.0f} MiB, at the "
                   f"end {mem['rss_end_mib']:.0f} MiB); {mem['classified']} classified in {mem['seconds']:.0f} s; "
                   f"thumbnails decoded {mem['thumbnails_decoded']} of {mem['images']} (lazy)")
    elif "error" in mem:
        errors.append(mem["error"])
    out += [f"   error: {e}" for e in errors]
    return out


def render_limit(res: dict[str, Any]) -> list[str]:
    if "matmul_flops" not in res:
        return ["5. Physical limit", "   not measured in this run (--gui-only)"]
    rates, ort_rates = res.get("matmul_flops", []), res.get("ort_matmul_flops", [])
    peak = max([*rates, *ort_rates]) if rates or ort_rates else math.nan
    out = [f"5. Physical limit: float32 2048x2048 matmul on all cores, best (median) of {len(rates)}: numpy BLAS "
           f"{fmt(max(rates, default=math.nan) / 1e9)} ({fmt(median(rates) / 1e9)}) GFLOP/s, ONNX Runtime MatMul "
           f"{fmt(max(ort_rates, default=math.nan) / 1e9)} ({fmt(median(ort_rates) / 1e9)}) GFLOP/s; the machine's "
           f"figure is the best of all: {fmt(peak / 1e9)} GFLOP/s. 'of the machine' = floor / measured (raw ORT, "
           "scores only, batch 8)"]
    rows = []
    for m in res["models"]:
        macs = m["macs"]
        flops = 2 * macs["inference"]
        floor_ms = flops / peak * 1000 if peak else math.nan
        actual_ms = 1000 / median(m["rates"]["raw_ort_scores_only"])
        rows.append([m["name"], f"{flops / 1e9:.3f}", f"{2 * macs['gradcam'] / 1e6:.3f}", f"{floor_ms:.2f}",
                     f"{actual_ms:.2f}", f"{floor_ms / actual_ms * 100:.0f}%",
                     str(macs["unknown_nodes"])])
    out += table(rows, ["model", "GFLOP/image (Conv+Gemm+MatMul)", "Grad-CAM extra MFLOP", "floor ms/image",
                        "raw ORT ms/image", "of the machine", "uncounted nodes"])
    return out


def render_targets(res: dict[str, Any]) -> list[str]:
    out = []

    def line(name: str, ok: bool | None, figure: str) -> None:
        mark = "n/a " if ok is None else ("PASS" if ok else "MISS")
        out.append(f"   [{mark}] {name}: {figure}")

    for m in res["models"]:
        q = model_ratios(m)
        v = median(q["pipeline_vs_raw"])
        line(f"{m['name']} pipeline >= 0.8x raw ORT", v >= TARGETS["pipeline_vs_raw"], f"{v:.2f}x")
        if q.get("pipeline_vs_torch"):
            v = median(q["pipeline_vs_torch"])
            line(f"{m['name']} pipeline >= 2x PyTorch eager", v >= TARGETS["pipeline_vs_torch"], f"{v:.2f}x")
        else:
            line(f"{m['name']} pipeline >= 2x PyTorch eager", None, m.get("torch_note", ""))
        v = median(q["gradcam_overhead"])
        line(f"{m['name']} Grad-CAM overhead <= 10%", v <= TARGETS["gradcam_overhead"], f"{v * 100:+.1f}%")
    gui = res.get("gui", {})
    for key, what in (("stall", "during a batch"), ("stall_stepping", "during a batch, user stepping")):
        stalls = [max(x["stalls_ms"], default=0.0) for x in gui.get(key, []) if "stalls_ms" in x]
        if stalls:
            line(f"longest GUI stall <= 50 ms {what}", max(stalls) <= TARGETS["gui_stall_ms"],
                 f"worst of {len(stalls)} runs {max(stalls):.0f} ms (median {median(stalls):.0f} ms)")
    mem = gui.get("memory") or {}
    if "rss_peak_mib" in mem:
        line(f"peak RSS <= 600 MB at {mem['images']} images", mem["rss_peak_mib"] * 1.048576 <= TARGETS["rss_mib"],
             f"{mem['rss_peak_mib'] * 1.048576:.0f} MB")
    return out


def markdown_summary(res: dict[str, Any]) -> str:
    """The headline figures as a markdown table (for the README), from the same results as the table."""
    meta = res["meta"]
    head = ["figure (median of runs)", *[m["name"] for m in res["models"]], "target"]
    rows: list[list[str]] = []

    def row(label: str, values: list[str], target: str = "") -> None:
        rows.append([label, *values, target])

    qs = [model_ratios(m) for m in res["models"]]
    ms = res["models"]
    row("pipeline, images/s (decode → overlay, batch 8)", [fmt(median(m["rates"]["pipeline"])) for m in ms])
    row("(a) raw ONNX Runtime (best of all-core runs, lanes), images/s",
        [fmt(median(best_raw(m["rates"]))) for m in ms])
    row("pipeline ÷ raw ORT", [fmt(median(q["pipeline_vs_raw"]), ".2f") for q in qs], "≥ 0.8")
    row("(b) PyTorch eager pipeline, images/s", [fmt(median(m["rates"].get("torch_pipeline", []))) for m in ms])
    row("pipeline ÷ PyTorch eager", [fmt(median(q.get("pipeline_vs_torch", [])), ".2f") for q in qs], "≥ 2")
    row("(c) Grad-CAM cost (pipeline vs no-Grad-CAM model)",
        [fmt(median(q["gradcam_overhead"]) * 100, "+.1f") + " %" for q in qs], "≤ 10 %")
    row("batch-1 latency, file → overlay, ms (median / p95)",
        [f"{fmt(m['latency_ms']['pipeline_median'])} / {fmt(m['latency_ms']['pipeline_p95'])}" for m in ms])
    rates = [*res.get("matmul_flops", []), *res.get("ort_matmul_flops", [])]
    peak = max(rates) if rates else math.nan
    row("GFLOP per image / share of the machine's matmul FLOP/s reached",
        [f"{2 * m['macs']['inference'] / 1e9:.3f} / "
         f"{2 * m['macs']['inference'] / peak / (1 / median(m['rates']['raw_ort_scores_only'])) * 100:.0f} %"
         for m in ms])
    lines = [f"Measured {meta['date']} on {meta['machine']}; load average {meta['load_start']:.1f} → "
             f"{meta.get('load_end', math.nan):.1f} ({meta['runs']} runs).", "", *table(rows, head)]
    gui = res.get("gui") or {}
    launch = [x["first_paint"] for x in gui.get("launch", []) if "first_paint" in x]
    if launch:
        lines += ["", f"- Launch to first window: {median(launch):.2f} s (median of {len(launch)})."]
    for key, what in (("stall", "batch alone"), ("stall_stepping", "batch + a user stepping every 300 ms")):
        st = [x for x in gui.get(key, []) if "stalls_ms" in x]
        if st:
            worst = max(max(x["stalls_ms"], default=0.0) for x in st)
            p99 = median([percentile(x["stalls_ms"], 99) for x in st])
            lines.append(f"- GUI event loop during a {st[0]['images']}-image batch ({what}): longest stall "
                         f"{worst:.0f} ms, p99 {p99:.0f} ms (target ≤ 50 ms).")
    rev = gui.get("review") or {}
    if "saved_ms" in rev:
        lines.append(f"- Keyboard review ({rev['decisions']} x Enter on the real window): decision saved in "
                     f"{median(rev['saved_ms']):.1f} ms (median; committed with fsync), next image with its heatmap "
                     f"on screen {median(rev['next_shown_ms']):.0f} ms (median), "
                     f"{percentile(rev['next_shown_ms'], 95):.0f} ms (p95).")
    grp = gui.get("group") or {}
    if "enter_ms" in grp:
        lines.append(f"- A class group at once ({grp['group']} thumbnails selected in the gallery): Enter "
                     f"{grp['enter_ms']:.0f} ms, Ctrl+Z {grp['undo_ms']:.0f} ms, a class key "
                     f"{grp['class_key_ms']:.0f} ms (each one transaction, committed with fsync).")
    flt = gui.get("filter") or {}
    if "gallery_key_ms" in flt:
        lines.append(f"- Typing {flt['text']!r} into the filter bar on {flt['images']:,} images: "
                     f"{_ms_list(flt['table_key_ms'][:-1])} per key with the table shown, "
                     f"{_ms_list(flt['gallery_key_ms'][:-1])} with the gallery{_held(flt)}.")
    mem = gui.get("memory") or {}
    if "rss_peak_mib" in mem:
        lines.append(f"- Peak RSS with {mem['images']:,} images opened and classified: "
                     f"{mem['rss_peak_mib'] * 1.048576:.0f} MB (target ≤ 600 MB); thumbnails decoded: "
                     f"{mem['thumbnails_decoded']} (lazy).")
    return "\n".join(lines)
