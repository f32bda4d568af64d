"""A posting budget shared by every worker through Redis: sliding windows plus X's own verdict.

X limits how many posts one account may create (for example 100 per 15 minutes and a daily cap that
depends on the plan). Counting per process would let four workers spend four budgets, so the count
lives in Redis: one sorted set per window, scored by the time each slot was taken. A Lua script checks
every window and takes a slot atomically, so two workers can never both take the last one.

X's answers keep the budget honest: when a response says ``x-rate-limit-remaining: 0`` (or the
24-hour ``x-user-limit-24hour-remaining: 0``), or X answers 429, the budget is closed until the
``reset`` time X gave, whatever our own count says (another tool may post on the same account).

At most ``in_flight`` writes per account are in flight at a time (the ``gate``: a Redis sorted set of
leases, taken in the same script as the slot, each left by ``end_write`` once its answer is read and any
block it implies is set). X limits posts per window, not concurrent requests; the gate bounds how many
writes can be on their way when X answers 429: once the block is set no new write starts, and those
already in flight get a 429 too (a definite "not posted", retried after the reset). ``in_flight=1``
is the strict rule: nothing but the one write reaches X behind a 429.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ACQUIRE = """
-- KEYS: blocked-until key, the in-flight gate, then one sorted set per window
-- ARGV: now, member, gate lease in ms (0: no gate), writes allowed in flight, then (window seconds,
-- limit) pairs in KEYS order
local now = tonumber(ARGV[1])
local member = ARGV[2]
local gate_ms = tonumber(ARGV[3])
local in_flight = tonumber(ARGV[4])
local wait = 0
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then wait = blocked - now end
for i = 3, #KEYS do
  local window = tonumber(ARGV[3 + 2 * (i - 2)])
  local limit = tonumber(ARGV[4 + 2 * (i - 2)])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local free_at = tonumber(oldest[2]) + window - now
    if free_at > wait then wait = free_at end
  end
end
if wait > 0 then return tostring(wait) end
-- at most in_flight writes per account: each holds a lease in the gate (scored by when it lapses, on
-- Redis's clock, so a dead worker's lease lapses by itself) until its answer is read and any block it
-- implies is set; a 429 therefore closes the account (blocked-until) before a freed lease is taken again.
-- TIME before a write needs effects replication of scripts: the default since Redis 5 (compose ships 7).
if gate_ms > 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms)
  if redis.call('ZCARD', KEYS[2]) >= in_flight then return 'busy' end
  redis.call('ZADD', KEYS[2], ms + gate_ms, member)
  -- the key outlives its longest lease: a shorter lease (another worker's config) never cuts it short
  if redis.call('PTTL', KEYS[2]) < gate_ms + 1000 then redis.call('PEXPIRE', KEYS[2], gate_ms + 1000) end
end
for i = 3, #KEYS do
  local window = tonumber(ARGV[3 + 2 * (i - 2)])
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('EXPIRE', KEYS[i], math.ceil(window) + 60)
end
return '0'
"""

_BLOCK = """
-- KEYS[1]: blocked-until key; ARGV: until (unix seconds). Only ever moves the block later.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', math.ceil(wanted * 1000) + 1000)
end
return 1
"""

_END_WRITE = """
-- KEYS[1]: the in-flight gate; ARGV[1]: the slot whose lease ends (only its own).
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

_BACKOFF_429 = """
-- KEYS: blocked-until key, the 429 streak; ARGV: now, base, max, jitter factor.
-- A 429 while the account is already closed was a write in flight when an earlier 429 closed it: it
-- waits for that block and does not lengthen the streak (N writes in flight would double it N times).
local now = tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then return tostring(blocked - now) end
local streak = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[3]) * 2))
local wait = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(math.max(streak - 1, 0), 16)
                      * tonumber(ARGV[4]))
redis.call('SET', KEYS[1], tostring(now + wait), 'PXAT', math.ceil((now + wait) * 1000) + 1000)
return tostring(wait)
"""

_POSTED = """
-- A write was answered with a post: in one step, close the account until X's reset if its headers say
-- nothing is left (_BLOCK), end the 429 streak, then end the write's lease (after the block, as end_write).
-- KEYS: blocked-until key, the 429 streak, the in-flight gate; ARGV: until ('' when open), the slot,
-- '1' when the slot holds a lease
if ARGV[1] ~= '' then
  local wanted = tonumber(ARGV[1])
  if wanted > tonumber(redis.call('GET', KEYS[1]) or '0') then
    redis.call('SET', KEYS[1], ARGV[1], 'PXAT', math.ceil(wanted * 1000) + 1000)
  end
end
redis.call('DEL', KEYS[2])
if ARGV[3] == '1' then redis.call('ZREM', KEYS[3], ARGV[2]) end
return 1
"""

BUSY = -1.0  # acquire's wait when the account's writes in flight are at the limit: ask again in a moment


@dataclass(frozen=True)
class Window:
    seconds: float
    limit: int


class PostingBudget:
    """Take a slot before each post; give it back if the post provably did not happen.

    With a ``gate`` (seconds), a slot also holds one of the account's ``in_flight`` leases until
    ``end_write`` (or for at most ``gate`` seconds, should its worker die): at most ``in_flight``
    writes per account at a time, so that once X answers 429 no new write reaches it before the
    reset, and at most ``in_flight - 1`` others were already on their way. ``acquire`` answers
    ``(None, BUSY)`` while ``in_flight`` writes are in flight.
    """

    def __init__(self, redis: Any, key: str, windows: list[Window], gate: float = 0.0,
                 in_flight: int = 1) -> None:
        self.redis = redis
        self.key = key
        self.windows = [w for w in windows if w.limit > 0]
        self.gate = gate
        self.in_flight = max(1, in_flight)
        # the leases' sorted set; not the one-write gate's ``:inflight`` string, so that during a rolling
        # upgrade old and new workers never meet a key of the other type (WRONGTYPE in a script, or a
        # live lease of the other version deleted): for that window each version keeps its own gate,
        # at most max_in_flight + 1 writes in flight
        self._leases = f"{key}:leases"
        self._acquire = redis.register_script(_ACQUIRE)
        self._block = redis.register_script(_BLOCK)
        self._end_write = redis.register_script(_END_WRITE)
        self._backoff_429 = redis.register_script(_BACKOFF_429)
        self._posted = redis.register_script(_POSTED)

    def _keys(self) -> list[str]:
        return [f"{self.key}:blocked", self._leases] + [f"{self.key}:w{int(w.seconds)}"
                                                                  for w in self.windows]

    def acquire(self, now: float) -> tuple[str | None, float]:
        """Take one slot: (slot id, 0) on success, (None, seconds to wait) when the budget is spent,
        (None, BUSY) when the account's writes in flight are at the limit."""
        member = f"{now:.6f}:{uuid.uuid4().hex[:12]}"
        args: list[Any] = [now, member, int(self.gate * 1000), self.in_flight]
        for w in self.windows:
            args += [w.seconds, w.limit]
        answer = self._acquire(keys=self._keys(), args=args)
        if answer == "busy":
            return None, BUSY
        wait = float(answer)
        return (None, wait) if wait > 0 else (member, 0.0)

    def end_write(self, slot: str | None) -> None:
        """The write that took ``slot`` has its answer (and any block it implies is set): end its lease."""
        if slot is not None and self.gate > 0:
            self._end_write(keys=[self._leases], args=[slot])

    def release(self, slot: str | None) -> None:
        """Return a slot whose post provably did not take effect (refused connection, 429)."""
        if slot is None:
            return
        pipe = self.redis.pipeline()
        for key in self._keys()[2:]:
            pipe.zrem(key, slot)
        pipe.execute()

    def block_until(self, until: float) -> None:
        self._block(keys=[f"{self.key}:blocked"], args=[until])

    def sync(self, headers: Mapping[str, str], now: float) -> float | None:
        """Close the budget until X's reset when its headers say nothing is left; returns that time."""
        until = exhausted_until(headers, now)
        if until is not None:
            self.block_until(until)
        return until

    def posted(self, slot: str | None, headers: Mapping[str, str], now: float) -> float | None:
        """A write with ``slot`` was answered with a post: ``sync(headers)``, ``clear_429`` and
        ``end_write(slot)`` in one script (one round trip instead of two or three). Returns the block."""
        until = exhausted_until(headers, now)
        self._posted(keys=[f"{self.key}:blocked", f"{self.key}:429s", self._leases],
                     args=["" if until is None else repr(until), slot or "",
                           "1" if slot is not None and self.gate > 0 else "0"])
        return until

    def backoff_429(self, now: float) -> float:
        """Seconds to wait after a 429 without a reset time: 60, 120, 240 ... s (× U(1, 1.25)), at most an hour.

        The streak is counted in Redis, so every worker's 429 lengthens the same account's wait, and
        the account is closed for that long in the same script. A 429 that arrives while the account is
        already closed (a write that was in flight) waits for the block and leaves the streak alone.
        """
        return float(self._backoff_429(keys=[f"{self.key}:blocked", f"{self.key}:429s"],
                                       args=[now, BACKOFF_429_BASE, BACKOFF_429_MAX, random.uniform(1.0, 1.25)]))

    def clear_429(self) -> None:
        """A post went through: the next header-less 429 starts the backoff from the bottom again."""
        self.redis.delete(f"{self.key}:429s")

    def used(self, now: float) -> dict[int, int]:
        """Slots taken per window (for `notifier preview`, docs and tests)."""
        out = {}
        for w, key in zip(self.windows, self._keys()[2:], strict=True):
            out[int(w.seconds)] = int(self.redis.zcount(key, now - w.seconds, "+inf"))
        return out


class LocalBudget(PostingBudget):
    """Same rules in process memory, for unit tests and previews without Redis (not shared!)."""

    def __init__(self, windows: list[Window], gate: float = 0.0,  # noqa: D107 - no Redis on purpose
                 in_flight: int = 1) -> None:
        self.key = "local"
        self.windows = [w for w in windows if w.limit > 0]
        self.gate = gate
        self.in_flight = max(1, in_flight)
        self._slots: dict[int, list[tuple[float, str]]] = {i: [] for i in range(len(self.windows))}
        self._blocked = 0.0
        self._inflight: dict[str, float] = {}  # slot -> until
        self._lock = threading.Lock()

    def acquire(self, now: float) -> tuple[str | None, float]:
        with self._lock:
            wait = max(0.0, self._blocked - now)
            for i, w in enumerate(self.windows):
                self._slots[i] = [s for s in self._slots[i] if s[0] > now - w.seconds]
                if len(self._slots[i]) >= w.limit:
                    wait = max(wait, self._slots[i][0][0] + w.seconds - now)
            if wait > 0:
                return None, wait
            if self.gate > 0:
                self._inflight = {s: until for s, until in self._inflight.items() if until > now}
                if len(self._inflight) >= self.in_flight:
                    return None, BUSY
            member = f"{now:.6f}:{uuid.uuid4().hex[:12]}"
            if self.gate > 0:
                self._inflight[member] = now + self.gate
            for i in self._slots:
                self._slots[i].append((now, member))
            return member, 0.0

    def end_write(self, slot: str | None) -> None:
        with self._lock:
            if slot is not None:
                self._inflight.pop(slot, None)

    def release(self, slot: str | None) -> None:
        with self._lock:
            for i in self._slots:
                self._slots[i] = [s for s in self._slots[i] if s[1] != slot]

    def block_until(self, until: float) -> None:
        with self._lock:
            self._blocked = max(self._blocked, until)

    def backoff_429(self, now: float) -> float:
        with self._lock:
            if self._blocked > now:
                return self._blocked - now
            self._streak = getattr(self, "_streak", 0) + 1
            wait = _jittered(self._streak)
            self._blocked = now + wait
            return wait

    def clear_429(self) -> None:
        with self._lock:
            self._streak = 0

    def posted(self, slot: str | None, headers: Mapping[str, str], now: float) -> float | None:
        until = self.sync(headers, now)
        self.clear_429()
        self.end_write(slot)
        return until

    def used(self, now: float) -> dict[int, int]:
        return {int(w.seconds): sum(1 for s in self._slots[i] if s[0] > now - w.seconds)
                for i, w in enumerate(self.windows)}


class BudgetStore:
    """Posting budgets in one Redis, each keyed ``<prefix>x:<channel>:budget`` under the installation's
    ``redis.key_prefix``, so two installations sharing one Redis never share a budget."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def budget(self, channel: str, windows: list[Window], gate: float = 0.0,
               in_flight: int = 1) -> PostingBudget:
        """The budget (and, with ``gate``, the gate of at most ``in_flight`` writes at a time) every
        worker posting as ``channel`` shares."""
        return PostingBudget(self.redis, f"{self.prefix}x:{channel}:budget", windows, gate, in_flight)


BACKOFF_429_BASE = 60.0
BACKOFF_429_MAX = 3600.0


def _jittered(streak: int) -> float:
    # never below the base (X asks for patience), jitter upwards so workers do not return in step
    return min(BACKOFF_429_MAX, BACKOFF_429_BASE * 2 ** min(max(streak - 1, 0), 16) * random.uniform(1.0, 1.25))


def exhausted_until(headers: Mapping[str, str], now: float) -> float | None:
    """X's reset time when a response's rate-limit headers say nothing is left, else None."""
    until = None
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        remaining = _number(headers.get(f"{prefix}-remaining"))
        reset = _number(headers.get(f"{prefix}-reset"))
        if remaining is not None and remaining <= 0 and reset is not None and reset > now:
            until = max(until or 0.0, reset)
    return until


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
