"""Run one location's due probes concurrently, keep their votes in Redis, hand the events on.

One beat tick per location (task ``notifier.probes.tick`` on queue ``notifier.probes.<location>``)
calls ``run_due``: it reads every probe's last run in one round trip, takes a per-probe lock
(``SET NX PX``) for each one due before the next tick (``schedule``: a stable phase per probe spreads
them over the interval), so a probe never runs twice at once at one location even when ticks overlap,
and hands each to a thread pool of ``probes.concurrency`` threads at its due time: hundreds of probes
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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from notifier.config.settings import ProbeSettings, Settings
from notifier.domain.events import AlertEvent
from notifier.engine.settings import parse_engine
from notifier.probes import checks, history, schedule
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
    def __init__(self, app: Any, location: str | None = None, check: Check = checks.run,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.app = app
        # waits until a probe's due time: real time, unless the app's clock says otherwise (a fake clock)
        self.sleep: Callable[[float], None] = time.sleep
        if sleep is not None:
            self.sleep = sleep
        elif callable(getattr(app.clock, "sleep", None)):
            self.sleep = app.clock.sleep
        self.settings: Settings = app.settings
        self.location = location or self.settings.probes.location
        self.redis = app.require_redis()
        self.check = check
        self._release = self.redis.register_script(_RELEASE)
        self._count_run = self.redis.register_script(history.COUNT_RUN)

    def key(self, name: str, *parts: str) -> str:
        return self.app.key("probe", name, *parts)

    def due(self, now: float, window: float | None = None) -> list[tuple[ProbeSettings, float]]:
        """The probes to start before ``now + window`` (the next tick), with their due times (``schedule``)."""
        probes = self.settings.probes.checks
        if not probes:
            return []
        window = self.settings.probes.tick_seconds if window is None else window
        raw = self.redis.mget([self.key(p.name, "loc", self.location) for p in probes])
        out = []
        for probe, text in zip(probes, raw, strict=True):
            at = self._due_at(probe, text, now, window)
            if at < now + window:
                out.append((probe, at))
        return out

    def _due_at(self, probe: ProbeSettings, text: str | None, now: float, window: float) -> float:
        last = LocationState.from_dict(json.loads(text)).last_run if text else 0.0
        return schedule.due_at(probe.name, probe.interval, last, now, window)

    def run_due(self, accept: Accept) -> TickReport:
        """Lock the probes due before the next tick, start each at its due time, wait for them all."""
        now = self.app.clock.timestamp()
        began = time.monotonic()  # waits are real time, measured from here (the app clock may be a fake)
        window = self.settings.probes.tick_seconds
        report = TickReport()
        due = self.due(now, window)
        if not due:
            return report
        workers = min(self.settings.probes.concurrency, len(due))
        # a run makes at most a handful of timed operations, and waits behind at most len/workers others
        batches = -(-len(due) // workers)
        ttl_ms = int(((max(p.timeout for p, _ in due) * 6 + 30) * batches + window) * 1000)
        tokens = [secrets.token_hex(8) for _ in due]
        pipe = self.redis.pipeline(transaction=False)  # one round trip for all the locks
        for (probe, _), token in zip(due, tokens, strict=True):
            pipe.set(self.key(probe.name, "lock", self.location), token, nx=True, px=ttl_ms)
        locked: list[tuple[ProbeSettings, float, str]] = []
        for (probe, at), token, got in zip(due, tokens, pipe.execute(), strict=True):
            if got:
                locked.append((probe, at, token))
            else:
                report.skipped_locked.append(probe.name)
        if not locked:
            return report
        # read the states again under the locks (one round trip): a run of an overlapping tick may have
        # finished between the first read and our lock; the runs below record on top of these
        fresh = self.redis.mget([self.key(p.name, "loc", self.location) for p, _, _ in locked])
        runs: list[tuple[ProbeSettings, float, str, str | None]] = []
        for (probe, _, token), text in zip(locked, fresh, strict=True):
            at = self._due_at(probe, text, now, window)
            if at < now + window:
                runs.append((probe, at, token, text))
            else:  # just ran: not ours to run again
                report.skipped_locked.append(probe.name)
                self._release_lock(probe, token)
        runs.sort(key=lambda run: run[1])
        lock = threading.Lock()

        def one(probe: ProbeSettings, at: float, token: str, text: str | None) -> None:
            # check and record in the same thread: the Redis round trips of hundreds of probes overlap too
            try:
                result = self.check(probe, at)  # ``now`` of the check: its due time
                state = self.record(probe, result, accept, report, lock, state_text=text)
                with lock:
                    report.states[probe.name] = state
                    report.ran.append(probe.name)
            except Exception:  # one probe's trouble (or Redis's) never stops the others
                log.exception("probe %s failed to record its run", probe.name)
            finally:
                self._release_lock(probe, token)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            futures = []
            for probe, at, token, text in runs:
                wait = (at - now) - (time.monotonic() - began)
                if wait > 0:
                    self.sleep(wait)  # start on the probe's own schedule, not with everything due this tick
                futures.append(pool.submit(one, probe, at, token, text))
            for future in futures:
                future.result()
        return report

    def _release_lock(self, probe: ProbeSettings, token: str) -> None:
        try:
            self._release(keys=[self.key(probe.name, "lock", self.location)], args=[token])
        except Exception:  # the lock expires by itself
            log.warning("could not release the lock of probe %s", probe.name, exc_info=True)

    def record(self, probe: ProbeSettings, result: Result, accept: Accept, report: TickReport | None = None,
               lock: threading.Lock | None = None, state_text: str | None | object = ...) -> str:
        """Store one run's outcome for this location, tally the votes, emit events; the agreed state.

        ``state_text``: this location's stored state as the caller read it under the probe's lock (saves
        a round trip); read here when not given."""
        now_dt = self.app.clock.now()
        now = now_dt.timestamp()
        loc_key = self.key(probe.name, "loc", self.location)
        text = self.redis.get(loc_key) if state_text is ... else state_text
        state = observe(LocationState.from_dict(json.loads(text) if isinstance(text, str) else None), result,
                        retries=probe.retries, slow_ms=probe.slow_ms, at=now)
        latency = -1 if result.latency_ms is None else result.latency_ms
        tally_key, token = self.key(probe.name, "tally"), secrets.token_hex(8)
        # one round trip: this location's run, then the tally lock, every location's votes, the agreed state
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(loc_key, json.dumps(state.to_dict()))
        pipe.hset(self.key(probe.name, "votes"), self.location, json.dumps([state.vote, now]))
        pipe.lpush(self.key(probe.name, "latency", self.location), json.dumps([now, latency, state.last_outcome]))
        pipe.ltrim(self.key(probe.name, "latency", self.location), 0, HISTORY - 1)
        day = history.day_of(now_dt, self.settings).isoformat()
        self._count_run(keys=[self.key(probe.name, "day", day)],
                        args=[state.last_outcome, "" if result.latency_ms is None else result.latency_ms,
                              history.DAY_TTL_SECONDS], client=pipe)
        pipe.set(tally_key, token, nx=True, px=10_000)
        pipe.hgetall(self.key(probe.name, "votes"))
        pipe.get(self.key(probe.name, "state"))
        *_, got, raw_votes, state_now = pipe.execute()
        return self.agree(probe, accept, now_dt, result.detail, report, lock,
                          prefetched=(token if got else None, raw_votes, state_now))

    def agree(self, probe: ProbeSettings, accept: Accept, now_dt: Any, detail: str,
              report: TickReport | None = None, lock: threading.Lock | None = None,
              prefetched: tuple[str | None, dict[str, str], str | None] | None = None) -> str:
        """Tally every location's fresh vote; on a change of the agreed state, emit and then save it.

        ``prefetched``: (our tally lock token or None if another location holds it, the votes, the agreed
        state) as ``record`` read them in its own round trip; read here when not given."""
        now = now_dt.timestamp()
        conf = self.settings.probes
        tally_key = self.key(probe.name, "tally")
        state_key = self.key(probe.name, "state")
        if prefetched is None:
            token = secrets.token_hex(8)
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(tally_key, token, nx=True, px=10_000)
            pipe.hgetall(self.key(probe.name, "votes"))
            pipe.get(state_key)
            got, raw_votes, text = pipe.execute()
            held: str | None = token if got else None
        else:
            held, raw_votes, text = prefetched
        if held is None:  # another location tallies right now
            return ProbeState.from_dict(json.loads(text) if text else None).state
        try:
            votes: dict[str, tuple[str, float]] = {}
            for loc, vote_text in raw_votes.items():
                if loc in conf.locations:
                    vote, when = json.loads(vote_text)
                    votes[loc] = (str(vote), float(when))
            fresh_after = now - (probe.interval * 3 + probe.timeout * 2)
            agreed = tally(votes, quorum=conf.quorum, fresh_after=fresh_after)
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
            self._release(keys=[tally_key], args=[held])


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
