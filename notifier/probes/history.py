"""Probe results over time: per-day counters written with every run, and the readers of them.

Every run recorded by ``runner.ProbeRunner.record`` also counts into ``probe:<name>:day:<YYYY-MM-DD>``
(a hash, the day in the page's time zone, summed over locations): ``ok``, ``fail`` (a failed run),
``slow`` (answered, but slower than ``slow_ms``), ``lat_n``/``lat_sum``/``lat_max`` (milliseconds of the
runs that answered). Each day key expires ``DAY_TTL_DAYS`` after its last write, so the 90-day bars
always have their days and nothing grows without bound. The recent runs themselves are the runner's
``probe:<name>:latency:<location>`` lists (the last 120 runs per location).

``ProbeHistory`` reads both for the console; ``PageProbeResults`` is the status page's
``ProbeResultsReader`` (the statuspage package only knows that protocol, never Redis or this module).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from notifier.config.settings import ProbeSettings, Settings
from notifier.statuspage.snapshot import ComponentProbes, ProbeDay, page_zone

DAY_TTL_DAYS = 100
DAY_TTL_SECONDS = DAY_TTL_DAYS * 86400

# One run into its day's hash; atomic, so two locations counting at once never lose a maximum.
COUNT_RUN = """
local k = KEYS[1]
local outcome, latency = ARGV[1], ARGV[2]
if outcome == 'down' then redis.call('HINCRBY', k, 'fail', 1) else redis.call('HINCRBY', k, 'ok', 1) end
if outcome == 'slow' then redis.call('HINCRBY', k, 'slow', 1) end
if latency ~= '' then
  redis.call('HINCRBY', k, 'lat_n', 1)
  redis.call('HINCRBYFLOAT', k, 'lat_sum', latency)
  local top = tonumber(redis.call('HGET', k, 'lat_max') or '-1')
  if tonumber(latency) > top then redis.call('HSET', k, 'lat_max', latency) end
end
redis.call('EXPIRE', k, ARGV[3])
return 1
"""


def day_of(at: datetime, settings: Settings) -> date:
    """The calendar day a run counts into: the page's, so that it lands in the right bar."""
    return at.astimezone(page_zone(settings.page)).date()


def day_from_hash(day: date, raw: dict[str, str]) -> ProbeDay:
    """One day's counters as read back (a missing hash: a day without runs)."""
    ok, fail, slow = int(raw.get("ok", 0)), int(raw.get("fail", 0)), int(raw.get("slow", 0))
    answered = int(raw.get("lat_n", 0))
    total = float(raw.get("lat_sum", 0.0))
    top = float(raw["lat_max"]) if "lat_max" in raw else None
    return ProbeDay(day=day, runs=ok + fail, failed=fail, slow=slow, answered=answered,
                    mean_ms=round(total / answered, 1) if answered else None, max_ms=top)


@dataclass(frozen=True)
class RecentRun:
    """One run as the runner's latency list keeps it."""

    at: float  # unix seconds
    latency_ms: float | None  # None: nothing answered
    outcome: str  # up | slow | down
    location: str


class ProbeHistory:
    """Reads the probes' day counters and recent runs (one pipelined round trip per call)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = settings.redis.key_prefix

    def key(self, name: str, *parts: str) -> str:
        return ":".join([f"{self.prefix}probe", name, *parts])

    def days(self, names: list[str], first: date, last: date) -> dict[str, list[ProbeDay]]:
        """Each probe's days from ``first`` to ``last`` (inclusive, oldest first; days without runs too)."""
        span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if not names or not span:
            return {n: [] for n in names}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            for day in span:
                pipe.hgetall(self.key(name, "day", day.isoformat()))
        raw = iter(pipe.execute())
        return {name: [day_from_hash(day, next(raw) or {}) for day in span] for name in names}

    def recent(self, names: list[str]) -> dict[str, list[RecentRun]]:
        """Each probe's last runs from every configured location, oldest first."""
        locations = self.settings.probes.locations
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            for loc in locations:
                pipe.lrange(self.key(name, "latency", loc), 0, -1)
        raw = iter(pipe.execute())
        out: dict[str, list[RecentRun]] = {}
        for name in names:
            runs: list[RecentRun] = []
            for loc in locations:
                for text in next(raw) or []:
                    at, latency, outcome = json.loads(text)
                    runs.append(RecentRun(float(at), None if latency is None or latency < 0 else float(latency),
                                          str(outcome), loc))
            out[name] = sorted(runs, key=lambda r: r.at)
        return out


def component_probes(settings: Settings) -> dict[str, list[ProbeSettings]]:
    """The probes of each component, in configuration order."""
    out: dict[str, list[ProbeSettings]] = {}
    for probe in settings.probes.checks:
        out.setdefault(probe.component, []).append(probe)
    return out


class PageProbeResults:
    """The status page's ``ProbeResultsReader``: per component, its probes' days summed and the recent
    response times of its first probe (the one the sparkline shows)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.history = ProbeHistory(redis, settings)
        self.settings = settings

    def read(self, component_ids: list[str], first: date, last: date) -> dict[str, ComponentProbes]:
        probes = {cid: ps for cid, ps in component_probes(self.settings).items() if cid in component_ids}
        if not probes:
            return {}
        names = [p.name for ps in probes.values() for p in ps]
        days = self.history.days(names, first, last)
        recent = self.history.recent([ps[0].name for ps in probes.values()])
        out = {}
        for cid, ps in probes.items():
            summed = [_sum_days([days[p.name][i] for p in ps]) for i in range(len(days[ps[0].name]))]
            runs = recent[ps[0].name]
            out[cid] = ComponentProbes(probe=ps[0].name, days={d.day: d for d in summed},
                                       recent_ms=[r.latency_ms for r in runs],
                                       recent_from=runs[0].at if runs else None,
                                       recent_to=runs[-1].at if runs else None)
        return out


def _sum_days(days: list[ProbeDay]) -> ProbeDay:
    if len(days) == 1:
        return days[0]
    answered = sum(d.answered for d in days)
    total = sum((d.mean_ms or 0.0) * d.answered for d in days)
    maxes = [d.max_ms for d in days if d.max_ms is not None]
    return ProbeDay(day=days[0].day, runs=sum(d.runs for d in days), failed=sum(d.failed for d in days),
                    slow=sum(d.slow for d in days), answered=answered,
                    mean_ms=round(total / answered, 1) if answered else None, max_ms=max(maxes) if maxes else None)
