"""Large freed buffers go back to the operating system (glibc), so memory follows what the app still uses."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hemalens.cli

PROBE = """
import sys
import numpy as np
from hemalens.native_memory import return_large_buffers_to_os

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert return_large_buffers_to_os()
before = rss_mb()
big = np.ones(30 * 2**20, np.uint8); del big  # a freed 30 MB block: glibc then keeps blocks up to 30 MB in its heap
blocks = [np.ones(16 * 2**20, np.uint8) for _ in range(20)]  # 320 MB in 16 MB pieces, as Pillow decodes a scan
pin = np.ones(2**20, np.uint8)  # anything allocated after them keeps the heap from shrinking
del blocks
print(rss_mb() - before)
"""


def _kept_mb(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")
def test_freed_scan_sized_blocks_are_returned_to_the_system():
    assert _kept_mb("default") > 200  # what the app used to keep after a few decoded scans
    assert _kept_mb("fixed") < 50


def test_every_hemalens_command_sets_it_up_first(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(hemalens.cli, "return_large_buffers_to_os", lambda: calls.append(1) or True)
    assert hemalens.cli.main(["models"]) == 0
    assert calls == [1]
