"""The probes' pure logic: retries before a down vote, slow runs, the quorum, and the events it emits."""

from __future__ import annotations

from datetime import timedelta

from notifier.clock import FakeClock
from notifier.domain.model import ComponentStatus
from notifier.engine.settings import SeveritySettings
from notifier.probes.verdict import (
    DOWN,
    SLOW,
    UP,
    Alerting,
    LocationState,
    ProbeState,
    Result,
    observe,
    severity_for,
    tally,
    transition,
)

OK = Result(True, 20.0, "HTTP 200")
SLOWRUN = Result(True, 900.0, "HTTP 200, 900 ms")
FAIL = Result(False, None, "connection refused")
ALERTING = Alerting("web", "webmail", "http", "http://127.0.0.1:1/", "critical", "warning")


def run_all(results: list[Result], retries: int = 2, slow_ms: float | None = 500) -> list[str]:
    state = LocationState()
    votes = []
    for i, result in enumerate(results):
        state = observe(state, result, retries=retries, slow_ms=slow_ms, at=float(i))
        votes.append(state.vote)
    return votes


def test_a_location_votes_down_only_after_the_retries_and_up_at_the_first_good_run() -> None:
    assert run_all([FAIL, FAIL, FAIL, FAIL, OK]) == [UP, UP, DOWN, DOWN, UP]
    assert run_all([FAIL, OK, FAIL, FAIL, OK], retries=2) == [UP, UP, UP, UP, UP]
    assert run_all([FAIL], retries=0) == [DOWN]


def test_slow_runs_vote_slow_and_a_slow_answer_after_down_is_no_longer_down() -> None:
    assert run_all([SLOWRUN, SLOWRUN, SLOWRUN], retries=1) == [UP, SLOW, SLOW]
    assert run_all([FAIL, SLOWRUN], retries=0) == [DOWN, SLOW]
    assert run_all([SLOWRUN, SLOWRUN], retries=0, slow_ms=None) == [UP, UP]  # no threshold: never slow


def test_the_quorum_counts_fresh_votes_only_and_down_votes_support_slow() -> None:
    votes = {"fra": (DOWN, 100.0), "ams": (UP, 100.0)}
    assert tally(votes, quorum=1, fresh_after=0) == DOWN
    assert tally(votes, quorum=2, fresh_after=0) == UP  # one host's network trouble is no outage
    assert tally({"fra": (DOWN, 100.0), "ams": (SLOW, 100.0)}, quorum=2, fresh_after=0) == SLOW
    assert tally({"fra": (DOWN, 100.0), "ams": (DOWN, 10.0)}, quorum=2, fresh_after=50) == UP  # ams went quiet


def test_down_fires_once_per_outage_then_resolves_with_the_same_fingerprint() -> None:
    clock = FakeClock()
    start = clock.now()
    state, events = transition(ProbeState(), DOWN, now=start, detail="refused", alerting=ALERTING)
    assert [(e.status, e.fingerprint, e.severity) for e in events] == [("firing", "probe:web:down", "critical")]
    assert events[0].labels["component"] == "webmail" and events[0].source == "probe"
    first = events[0]
    later = start + timedelta(seconds=60)
    same, again = transition(state, DOWN, now=later, detail="refused", alerting=ALERTING)
    assert same is state and [e.id for e in again] == [first.id]  # a repeat: the event stream drops it
    end = start + timedelta(seconds=120)
    up, resolved = transition(state, UP, now=end, detail="HTTP 200", alerting=ALERTING)
    assert up.state == UP
    assert [(e.status, e.fingerprint, e.starts_at, e.ends_at) for e in resolved] == [
        ("resolved", "probe:web:down", start, end)]


def test_going_from_slow_to_down_resolves_the_slow_alert_and_fires_the_down_one() -> None:
    now = FakeClock().now()
    state, _ = transition(ProbeState(), SLOW, now=now, detail="900 ms", alerting=ALERTING)
    _, events = transition(state, DOWN, now=now + timedelta(seconds=30), detail="refused", alerting=ALERTING)
    assert [(e.status, e.fingerprint, e.severity) for e in events] == [
        ("resolved", "probe:web:slow", "warning"), ("firing", "probe:web:down", "critical")]


def test_nothing_is_emitted_while_up() -> None:
    assert transition(ProbeState(), UP, now=FakeClock().now(), detail="", alerting=ALERTING)[1] == []


def test_the_severity_is_one_the_engine_maps_to_the_wanted_status() -> None:
    smap = SeveritySettings().map
    assert smap[severity_for(ComponentStatus.MAJOR_OUTAGE, smap) or ""] == ComponentStatus.MAJOR_OUTAGE
    assert smap[severity_for(ComponentStatus.DEGRADED_PERFORMANCE, smap) or ""] == ComponentStatus.DEGRADED_PERFORMANCE
    assert severity_for(ComponentStatus.MAJOR_OUTAGE, {"warning": ComponentStatus.DEGRADED_PERFORMANCE}) is None
