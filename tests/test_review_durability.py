"""Killing HemaLens at any moment loses no acknowledged decision.

A real separate Python process records decisions through the store and prints an
acknowledgement after each call returns (i.e. after the commit). The test SIGKILLs it while it
is still writing, at a different point each round, then reopens the database and checks that
every acknowledged decision is there, field by field, and that the database is intact.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

from review.store import ReviewStore

ROOT = Path(__file__).resolve().parents[1]

_WRITER = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from review.store import ReviewStore
db, folder, start = sys.argv[2], sys.argv[3], int(sys.argv[4])
store = ReviewStore.open(db)
case = store.open_case(folder)
print("READY", flush=True)
for i in range(start, start + 100000):
    h = hashlib.sha256(str(i).encode()).hexdigest()
    if i % 3 == 0:
        case.record_prediction(f"img{i}.png", h, model_name="Tiny", model_version="1", model_sha256="f" * 64,
                               predicted_id="benign", probabilities={"benign": 0.9, "blast": 0.1})
    d = case.record_decision(f"img{i}.png", h, reviewed_id=("blast" if i % 2 else "benign"),
                             flagged=bool(i % 5 == 0), comment=f"note {i}", user="tech")
    print(f"ACK {i} {d.id}", flush=True)
"""


def _run_and_kill(db: Path, folder: Path, start: int, kill_after: int) -> dict[int, int]:
    """Start the writer, SIGKILL it after `kill_after` acknowledgements; return {i: decision id}."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(ROOT), str(db), str(folder), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acks: dict[int, int] = {}
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        while len(acks) < kill_after:
            line = proc.stdout.readline()
            assert line.startswith("ACK"), f"writer stopped early: {line!r} {proc.stderr.read()}"
            _, i, decision_id = line.split()
            acks[int(i)] = int(decision_id)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is busy committing the next ones
        proc.wait(timeout=30)
        # Read what is left through the same text reader: readline() may already hold acknowledgements it
        # read ahead, which communicate() (reading the raw pipe) would miss, making them look unacknowledged.
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.splitlines():  # acknowledgements printed before the kill landed count too
        if line.startswith("ACK"):
            _, i, decision_id = line.split()
            acks[int(i)] = int(decision_id)
    assert proc.returncode == -signal.SIGKILL
    return acks


def test_sigkill_mid_stream_loses_no_acknowledged_decision(tmp_path: Path) -> None:
    db = tmp_path / "data" / "reviews.sqlite3"
    folder = tmp_path / "case"
    folder.mkdir()
    all_acks: dict[int, int] = {}
    for round_no, kill_after in enumerate((7, 41, 113)):
        acks = _run_and_kill(db, folder, start=round_no * 100000, kill_after=kill_after)
        assert len(acks) >= kill_after
        all_acks.update(acks)

        with ReviewStore.open(db) as store:
            assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            case = store.open_case(folder)
            stored = {d.id: d for d in case.decisions()}
            states = case.current_state()
            for i, decision_id in all_acks.items():
                d = stored.get(decision_id)
                assert d is not None, f"acknowledged decision {i} (id {decision_id}) was lost"
                h = hashlib.sha256(str(i).encode()).hexdigest()
                assert (d.image_hash, d.image_path, d.comment, d.user) == (h, f"img{i}.png", f"note {i}", "tech")
                assert d.reviewed_id == ("blast" if i % 2 else "benign") and d.flagged == (i % 5 == 0)
                assert (d.prediction is not None) == (i % 3 == 0)
                assert states[h].reviewed_id == d.reviewed_id
            # Beyond the acknowledged ones, at most the decision in flight at each kill may be present.
            assert len(stored) - len(all_acks) <= round_no + 1


_GROUP_WRITER = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from review.store import DecisionRequest, ReviewStore
db, folder = sys.argv[2], sys.argv[3]
store = ReviewStore.open(db)
case = store.open_case(folder)
print("READY", flush=True)
for g in range(100000):
    group = [DecisionRequest(f"g{g}_{k}.png", hashlib.sha256(f"{g}/{k}".encode()).hexdigest(), "benign", False,
                             f"group {g}", 0) for k in range(25)]
    case.record_decisions(group, user="tech")
    print(f"ACK {g} 0", flush=True)
"""


def test_sigkill_while_groups_are_written_leaves_every_group_whole_or_absent(tmp_path: Path) -> None:
    """A class group decided at once is one transaction: a kill never leaves part of a group on record."""
    db = tmp_path / "reviews.sqlite3"
    folder = tmp_path / "case"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _GROUP_WRITER, str(ROOT), str(db), str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked = set()
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        while len(acked) < 9:
            line = proc.stdout.readline()
            assert line.startswith("ACK"), f"writer stopped early: {line!r} {proc.stderr.read()}"
            acked.add(int(line.split()[1]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        acked |= {int(line.split()[1]) for line in proc.stdout.read().splitlines() if line.startswith("ACK")}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with ReviewStore.open(db) as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        sizes: dict[int, int] = {}
        for d in store.open_case(folder).decisions():
            g = int(d.comment.removeprefix("group "))
            sizes[g] = sizes.get(g, 0) + 1
    assert set(sizes.values()) == {25}, sizes  # whole groups only
    assert acked <= set(sizes) and len(sizes) - len(acked) <= 1  # at most the group in flight besides
