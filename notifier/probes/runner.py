"""Run one location's due probes concurrently, keep their votes in Redis, hand the events on.

One beat tick per location (task ``notifier.probes.tick`` on queue ``notifier.probes.<location>``)
calls ``run_due``: it reads every probe's last run in one round trip, takes a per-probe lock
(``SET NX PX``) for each due one, so a probe never runs twice at once at one location even when
ticks overlap, and runs them on a thread pool of ``probes.concurrency`` threads: hundreds of probes
cost threads of one process, not processes. Each run, in its thread, updates the location's state and vote;
then the votes of all locations are tallied against ``probes.quorum`` and a state change becomes
``AlertEvent``s, which go to ``accept`` (``services.ingest.accept_events``) *before* the new agreed
state is saved: a crash in between re-emits the same events next run, and the event stream drops
the duplicates (their ids depend only on fingerprint, status and start/end times).

Keys, under the configured prefix: ``probe:<name>:loc:<location>`` (that location's state, JSON),
``probe:<name>:votes`` (hash location -> [vote, time]), ``probe:<name>:state`` (the agreed state),
``probe:<name>:latency:<location>`` (the last 120 runs: time, latency ms or -1, outcome),
``probe:<name>:day:<YYYY-MM-DD>`` (that day's counters over all locations, see ``history``),
``probe:<name>:lock:<location>`` and ``probe:<name>:tally`` (locks).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from notifier.config.settings import ProbeSettings, Settings
from notifier.domain.events import AlertEvent
from notifier.engine.settings import parse_engine
from notifier.probes import checks, history
from notifier.probes.verdict import (
    Alerting,
    LocationState,
    ProbeState,
    Result,
    observe,
    severity_for,
    tally,
    transition,
)

log = logging.getLogger(__name__)

HISTORY = 120
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Accept = Callable[[list[AlertEvent]], Any]
Check = Callable[[ProbeSettings, float], Result]


@dataclass
class TickReport:
    ran: list[str] = field(default_factory=list)
    skipped_locked: list[str] = field(default_factory=list)
    events: int = 0
    states: dict[str, str] = field(default_factory=dict)  # probe -> agreed state after this tick


def alerting_for(settings: Settings, probe: ProbeSettings) -> Alerting:
    """The probe's event shape under this config (``config check`` guarantees the severities exist)."""
    engine = parse_engine(settings.engine)
    smap = engine.severity.map
    return Alerting(
        name=probe.name, component=probe.component, kind=probe.type, target=probe.target,
        down_severity=severity_for(probe.down_status, smap) or "critical",
        slow_severity=severity_for(probe.slow_status, smap) or "warning",
        component_label=engine.routing.component_label or "component",
    )


class ProbeRunner:
    def __init__(self, app: Any, location: str | None = None, check: Check = checks.run) -> None:
        self.app = app
        self.settings: Settings = app.settings
        self.location = location or self.settings.probes.location
        self.redis = app.require_redis()
        self.check = check
        self._release = self.redis.register_script(_RELEASE)
        self._count_run = self.redis.register_script(history.COUNT_RUN)

    def key(self, name: str, *parts: str) -> str:
        return self.app.key("probe", name, *parts)

    def due(self, now: float) -> list[ProbeSettings]:
        probes = self.settings.probes.checks
        if not probes:
            return []
        raw = self.redis.mget([self.key(p.name, "loc", self.location) for p in probes])
        out = []
        for probe, text in zip(probes, raw, strict=True):
            last = LocationState.from_dict(json.loads(text)).last_run if text else 0.0
            # half a tick of slack: a probe due just after this tick would otherwise wait a whole tick more
            if now - last >= probe.interval - self.settings.probes.tick_seconds / 2:
                out.append(probe)
        return out

    def run_due(self, accept: Accept) -> TickReport:
        now = self.app.clock.timestamp()
        report = TickReport()
        due = self.due(now)
        if not due:
            return report
        workers = min(self.settings.probes.concurrency, len(due))
        # a run makes at most a handful of timed operations, and waits behind at most len/workers others
        batches = -(-len(due) // workers)
        ttl_ms = int((max(p.timeout for p in due) * 6 + 30) * batches * 1000)
        tokens = [secrets.token_hex(8) for _ in due]
        pipe = self.redis.pipeline(transaction=False)  # one round trip for all the locks
        for probe, token in zip(due, tokens, strict=True):
            pipe.set(self.key(probe.name, "lock", self.location), token, nx=True, px=ttl_ms)
        locked: list[tuple[ProbeSettings, str]] = []
        for probe, token, got in zip(due, tokens, pipe.execute(), strict=True):
            if got:
                locked.append((probe, token))
            else:
                report.skipped_locked.append(probe.name)
        if not locked:
            return report
        lock = threading.Lock()

        def one(probe: ProbeSettings, token: str) -> None:
            # check and record in the same thread: the Redis round trips of hundreds of probes overlap too
            try:
                result = self.check(probe, now)
                state = self.record(probe, result, accept, report, lock)
                with lock:
                    report.states[probe.name] = state
                    report.ran.append(probe.name)
            except Exception:  # one probe's trouble (or Redis's) never stops the others
                log.exception("probe %s failed to record its run", probe.name)
            finally:
                try:
                    self._release(keys=[self.key(probe.name, "lock", self.location)], args=[token])
                except Exception:  # the lock expires by itself
                    log.warning("could not release the lock of probe %s", probe.name, exc_info=True)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            for future in [pool.submit(one, probe, token) for probe, token in locked]:
                future.result()
        return report

    def record(self, probe: ProbeSettings, result: Result, accept: Accept, report: TickReport | None = None,
               lock: threading.Lock | None = None) -> str:
        """Store one run's outcome for this location, tally the votes, emit events; the agreed state."""
        now_dt = self.app.clock.now()
        now = now_dt.timestamp()
        loc_key = self.key(probe.name, "loc", self.location)
        text = self.redis.get(loc_key)
        state = observe(LocationState.from_dict(json.loads(text) if text else None), result,
                        retries=probe.retries, slow_ms=probe.slow_ms, at=now)
        latency = -1 if result.latency_ms is None else result.latency_ms
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(loc_key, json.dumps(state.to_dict()))
        pipe.hset(self.key(probe.name, "votes"), self.location, json.dumps([state.vote, now]))
        pipe.lpush(self.key(probe.name, "latency", self.location), json.dumps([now, latency, state.last_outcome]))
        pipe.ltrim(self.key(probe.name, "latency", self.location), 0, HISTORY - 1)
        day = history.day_of(now_dt, self.settings).isoformat()
        self._count_run(keys=[self.key(probe.name, "day", day)],
                        args=[state.last_outcome, "" if result.latency_ms is None else result.latency_ms,
                              history.DAY_TTL_SECONDS], client=pipe)
        pipe.execute()
        return self.agree(probe, accept, now_dt, result.detail, report, lock)

    def agree(self, probe: ProbeSettings, accept: Accept, now_dt: Any, detail: str,
              report: TickReport | None = None, lock: threading.Lock | None = None) -> str:
        """Tally every location's fresh vote; on a change of the agreed state, emit and then save it."""
        now = now_dt.timestamp()
        conf = self.settings.probes
        tally_key = self.key(probe.name, "tally")
        token = secrets.token_hex(8)
        state_key = self.key(probe.name, "state")
        if not self.redis.set(tally_key, token, nx=True, px=10_000):  # another location tallies right now
            text = self.redis.get(state_key)
            return ProbeState.from_dict(json.loads(text) if text else None).state
        try:
            raw_votes = self.redis.hgetall(self.key(probe.name, "votes"))
            votes: dict[str, tuple[str, float]] = {}
            for loc, text in raw_votes.items():
                if loc in conf.locations:
                    vote, when = json.loads(text)
                    votes[loc] = (str(vote), float(when))
            fresh_after = now - (probe.interval * 3 + probe.timeout * 2)
            agreed = tally(votes, quorum=conf.quorum, fresh_after=fresh_after)
            text = self.redis.get(state_key)
            previous = ProbeState.from_dict(json.loads(text) if text else None)
            new, events = transition(previous, agreed, now=now_dt, detail=detail,
                                     alerting=alerting_for(self.settings, probe))
            if events:
                accept(events)  # durable before the new state is saved: a crash re-emits, never loses
                if report is not None:
                    with lock or threading.Lock():
                        report.events += len(events)
            if new is not previous:
                self.redis.set(state_key, json.dumps(new.to_dict()))
            return new.state
        finally:
            self._release(keys=[tally_key], args=[token])


def run_due(app: Any, accept: Accept, location: str | None = None) -> TickReport:
    return ProbeRunner(app, location).run_due(accept)


def snapshot(app: Any) -> list[dict[str, Any]]:
    """Every probe's agreed state and each location's last run, for the CLI and the console."""
    redis = app.require_redis()
    out = []
    for probe in app.settings.probes.checks:
        state_text = redis.get(app.key("probe", probe.name, "state"))
        locations = {}
        for loc in app.settings.probes.locations:
            text = redis.get(app.key("probe", probe.name, "loc", loc))
            if text:
                locations[loc] = LocationState.from_dict(json.loads(text))
        out.append({"probe": probe, "state": ProbeState.from_dict(json.loads(state_text) if state_text else None),
                    "locations": locations})
    return out
