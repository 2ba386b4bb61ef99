"""Durability: events acknowledged by a process that is then SIGKILLed are all stored, and retries dedupe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from zenrec.store import Event, EventStore

CHILD = Path(__file__).with_name("_durability_child.py")
PLANNED = 100_000  # far more than the child can write before it is killed
KILL_AFTER = 60  # acknowledged events seen before the SIGKILL


@pytest.mark.parametrize(("mode", "durability"), [("single", "fsync"), ("batch", "fsync"), ("batch", "os")])
def test_acknowledged_events_survive_sigkill(store_url, mode, durability):
    """``os`` durability too: a commit handed to the OS (or the database server) outlives the process."""
    EventStore(store_url).close()  # the table exists before the child starts
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), store_url, "d", str(PLANNED), mode, durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        first = proc.stdout.readline().strip()
        assert first == "ready", proc.stderr.read()
        acked: list[str] = []
        while len(acked) < KILL_AFTER:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        acked += proc.stdout.read().split()  # everything it printed before dying
        proc.wait(30)
    finally:
        watchdog.cancel()
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the child was not killed mid-run"
    assert KILL_AFTER <= len(acked) < PLANNED
    assert len(set(acked)) == len(acked)

    with EventStore(store_url) as store:
        stored = {r.event_id for r in store.events_since(0)}
        lost = set(acked) - stored
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}"
        # the client retries everything it sent (acknowledged or not) plus a little more
        attempted = range(max(int(a.split('-')[1]) for a in acked) + 20)
        events = [Event(f"u{i % 7}", f"i{i}", event_id=f"d-{i}") for i in attempted]  # what the child sent
        retry = store.append(events)
        assert all(s.duplicate for s in retry if s.event_id in set(acked))
        assert store.count() == len(attempted)  # every id stored once, none twice
        again = store.append(events)
        assert all(s.duplicate for s in again) and store.count() == len(attempted)
