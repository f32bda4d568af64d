"""Run the suite with the wall clock moved years ahead, in every Python process it starts.

`make test` runs the suite twice: once on today's clock, and once with ``OUTAGE_TEST_TIME_SHIFT_DAYS``
set (default 1,100 days, about three years). A test that writes a date literal and compares it with
now (a maintenance window "in the future", a token "not yet expired") passes today and fails in the
shifted run, the day it is written instead of months later.

How the shift reaches every process: ``python tests/timeshift.py install`` puts a one-line ``.pth``
file into the virtualenv's site-packages. Python runs it at start-up in every interpreter of that
venv (pytest, its xdist workers, the celery workers, beat and uvicorn the tests launch, whatever
environment they are given, as long as it keeps this variable), and it does nothing unless the
variable is set. ``time-machine`` then moves ``time.time``, ``datetime.now`` and friends; monotonic
clocks stay real, so timeouts and sleeps behave.

Why not libfaketime (Debian's faketime): with it, ``threading.Event.wait(timeout)`` hangs for ever
in CPython 3.11 (sem_clockwait on CLOCK_MONOTONIC), ``time.sleep`` fails with EINVAL once monotonic
clocks are left real, and redis-server's jemalloc deadlocks at start. Processes that are not
Python (redis-server, Alertmanager, Chromium) keep the real clock: tests that hand times to such a
process and expect it to agree with ours are marked ``real_clock`` and run only in the first pass.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from pathlib import Path

VARIABLE = "OUTAGE_TEST_TIME_SHIFT_DAYS"
PTH_NAME = "outage_notifier_timeshift.pth"
START = "timeshift_start"
HERE = Path(__file__).resolve()


def start() -> None:
    """Called from the .pth line at interpreter start when the variable is set."""
    import time_machine

    # site-packages is reached twice in a venv with a lib64 -> lib link, and runs the .pth twice
    if getattr(sys, "_outage_timeshift_started", False):
        return
    sys._outage_timeshift_started = True  # type: ignore[attr-defined]
    days = float(os.environ[VARIABLE])
    # The same offset in every process: the real now plus the shift, ticking from there.
    time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True).start()


def pth_line() -> str:
    return (f"import os; os.environ.get({VARIABLE!r}) and "
            f"__import__('runpy').run_path({str(HERE)!r}, run_name={START!r})\n")


def install() -> Path:
    target = Path(sysconfig.get_paths()["purelib"]) / PTH_NAME
    line = pth_line()
    if not target.exists() or target.read_text() != line:
        target.write_text(line)
    return target


if __name__ == START:
    start()
elif __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python tests/timeshift.py install")
    print(f"timeshift: {install()}")
