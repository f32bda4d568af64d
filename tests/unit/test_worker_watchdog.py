"""The wedged-consumer rule (pure); the process side is exercised by the Redis restart tests."""

from __future__ import annotations

import pytest

from workers.runtime import is_stalled


@pytest.mark.parametrize(("now", "last_received", "waiting_since", "busy", "stalled"), [
    (100, 0, None, False, False),     # nothing waiting: idle is fine
    (100, 0, 99, False, False),       # a message just arrived after a quiet spell
    (100, 0, 30, False, True),        # it has waited 70 s and nothing was received: wedged
    (100, 90, 30, False, False),      # we received something 10 s ago: alive
    (100, 0, 30, True, False),        # busy with long sends: the pool is full, not wedged
    (100, 40, 30, False, True),       # last receipt 60 s ago, messages waiting since before it
])
def test_stall_rule(now: float, last_received: float, waiting_since: float | None, busy: bool,
                    stalled: bool) -> None:
    assert is_stalled(now, last_received, waiting_since, busy, stall_after=60) is stalled
