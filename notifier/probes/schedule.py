"""When a probe is due: a stable per-probe phase within its interval, so hundreds of probes spread out.

Pure functions of the probe's name, interval and last run. A probe's runs sit on a grid
``phase + k * interval`` (unix seconds), where ``phase`` comes from a hash of its name: the same on
every host, every restart and every location, and spread evenly over the interval across many names.
A tick of the runner takes the probes due before its next tick and starts each at its due time, so
600 probes at 30 s meet a 5 s tick as ~100 per tick, spread over the tick, not 600 at once.

- ``next_due``: after a run at ``last_run``, the first grid point at least a tick (at most half an
  interval) later: a run that started or ended late keeps the grid, and no probe runs twice in a row
  within a tick (after its first run, say); one that never ran is due ``first_due``;
- ``first_due``: a probe this location never ran is due within the current tick window, at its
  phase's share of it: a fresh deploy sees every probe once within one tick, spread over that tick.
"""

from __future__ import annotations

import hashlib
import math


def fraction(name: str) -> float:
    """A stable number in [0, 1) for this name (not Python's ``hash``: that changes per process)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def phase(name: str, interval: float) -> float:
    return fraction(name) * interval


def next_due(name: str, interval: float, last_run: float, gap: float) -> float:
    """The first grid point of this probe at least ``gap`` after ``last_run`` (``gap`` at most the tick:
    a probe is then due again within one tick of ``last_run + interval``, whatever its phase)."""
    offset = phase(name, interval)
    earliest = last_run + min(gap, interval / 2)
    return offset + math.ceil((earliest - offset) / interval) * interval


def first_due(name: str, now: float, window: float) -> float:
    return now + fraction(name) * window


def due_at(name: str, interval: float, last_run: float, now: float, window: float) -> float:
    """When this probe should start next, seen at ``now`` by a tick covering ``window`` seconds."""
    return first_due(name, now, window) if last_run <= 0 else next_due(name, interval, last_run, window)
