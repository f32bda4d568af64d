"""The date-shifted pass of `make test` really moves the clock of every Python process it starts.

The reference is `date`, a process the shift does not reach: in the first pass the two clocks agree,
in the second a child interpreter (given a fresh environment, as the tests give their workers) is
ahead by exactly the shift."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.timeshift import VARIABLE


def test_a_child_interpreter_is_ahead_of_the_real_clock_by_the_shift():
    expected = float(os.environ.get(VARIABLE, "0")) * 86400
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child = float(subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env,
                                 capture_output=True, text=True, check=True).stdout)
    real = float(subprocess.run(["date", "+%s.%N"], capture_output=True, text=True, check=True).stdout)
    assert abs((child - real) - expected) < 120, (child - real, expected)


def test_this_process_is_shifted_like_its_children():
    expected = float(os.environ.get(VARIABLE, "0")) * 86400
    real = float(subprocess.run(["date", "+%s.%N"], capture_output=True, text=True, check=True).stdout)
    assert abs((time.time() - real) - expected) < 120
