"""Parts 3 and 4: start bench/gui_probe.py in fresh processes (offscreen Qt) and collect what they report.

A fresh process per measurement: launch time includes interpreter start and imports, and peak RSS
is the window's own, not this benchmark's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def probe_env(models_dir: Path, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["HEMALENS_BUNDLED_MODELS_DIR"] = str(models_dir)
    env["HEMALENS_USER_MODELS_DIR"] = str(scratch / "no-user-models")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_probe(args: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run one probe; its result, or {"error": ...} when it fails or times out."""
    cmd = [sys.executable, "-m", "bench.gui_probe", *args]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"probe exited {proc.returncode}: {' | '.join(tail)}"}


def launch_times(env: dict[str, str], runs: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(runs):
        t0 = time.time()
        out.append(run_probe(["launch", repr(t0)], env, 180))
    return out


def stall_runs(folder: Path, env: dict[str, str], runs: int, timeout_s: float, step_ms: int) -> list[dict[str, Any]]:
    """``runs`` batches over ``folder``; ``step_ms`` > 0 adds a user stepping through images at that pace."""
    return [run_probe(["stall", str(folder), str(timeout_s), str(step_ms)], env, timeout_s + 120)
            for _ in range(runs)]


def memory_run(folder: Path, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    return run_probe(["memory", str(folder), str(timeout_s)], env, timeout_s + 120)


def review_run(folder: Path, env: dict[str, str], decisions: int) -> dict[str, Any]:
    """The keyboard review loop: Enter -> saved -> next image with its heatmap on screen, ``decisions`` times."""
    return run_probe(["review", str(folder), str(decisions)], env, 900)


def filter_run(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Typing into the filter bar, a key at a time, with the table and then the gallery shown."""
    return run_probe(["filter", str(folder)], env, 1800)


def group_run(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """A class group at once in the gallery: Enter, Ctrl+Z and a class key on the biggest section."""
    return run_probe(["group", str(folder)], env, 900)
