"""The event stream in Redis: the accepted alert events the incident engine consumes.

Keys, under ``redis.key_prefix``:

    events                 STREAM, one entry per accepted AlertEvent (field ``event``: its JSON);
                           read by the consumer group ``engine``
    event:seen:<event id>  "1" for 7 days: the event was accepted (duplicates are dropped)

Accepting is one Lua script (XADD, then the seen marker) so no client sees one without the other; the
engine acknowledges (XACK) a batch inside the same MULTI that records what it decided about it (see
``store/engine_state.py``), so an event is acknowledged exactly when its consequences are durable.
"""

from __future__ import annotations

from typing import Any

import redis

from notifier.errors import StoreUnavailable

CONSUMER_GROUP = "engine"
STREAM = "events"

# KEYS[1] = stream, KEYS[2..n+1] = seen keys; ARGV[1] = ttl, ARGV[2..n+1] = event JSON.
# Returns the 1-based positions of the events that were new.
# The shebang makes Redis 7 refuse the whole script up front when it is out of memory (noeviction),
# instead of failing half-way: a Lua script's earlier writes are not rolled back. And XADD goes before
# the seen-marker, so even a failure between the two could only cause a duplicate, never a loss.
_ACCEPT = """#!lua
local fresh = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
    fresh[#fresh + 1] = i - 1
  end
end
return fresh
"""

Entry = tuple[str, dict[str, str]]


def entry_id(value: str) -> tuple[int, int]:
    """A stream id ``<ms>-<seq>`` as a comparable pair."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def stream_key(prefix: str) -> str:
    return prefix + STREAM


def seen_key(prefix: str, event_id: str) -> str:
    return f"{prefix}event:seen:{event_id}"


class RedisEventStream:
    """The ``EventStream`` port on a Redis stream with one consumer group."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.redis: Any = client
        self.prefix = prefix
        self.key = stream_key(prefix)
        # redis-py runs EVALSHA and reloads the script after a Redis restart
        self._accept = client.register_script(_ACCEPT)

    def accept(self, events: list[tuple[str, str]], ttl: int) -> set[int]:
        """Append each ``(event id, JSON)`` not seen within ``ttl`` seconds; the 1-based positions of the new."""
        keys = [self.key, *(seen_key(self.prefix, i) for i, _ in events)]
        try:
            return {int(p) for p in self._accept(keys=keys, args=[ttl, *(j for _, j in events)])}
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot queue alert events: {type(exc).__name__}: {exc}") from exc

    def append(self, event_json: str) -> str:
        """Append one entry without the seen check (tests, tools)."""
        return str(self.redis.xadd(self.key, {"event": event_json}))

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.key, CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:  # BUSYGROUP: it exists, which is fine
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, claim_idle_ms: int) -> list[Entry]:
        """The next batch for ``consumer``: its own pending entries first (it crashed before acknowledging),
        then entries a dead consumer left idle for ``claim_idle_ms``, then new ones."""
        mine = self.redis.xreadgroup(CONSUMER_GROUP, consumer, {self.key: "0"}, count=count)
        if mine and mine[0][1]:
            return self._live(mine[0][1])
        claimed = self.redis.xautoclaim(self.key, CONSUMER_GROUP, consumer, claim_idle_ms, "0-0", count=count)
        if claimed and claimed[1]:
            return self._live(claimed[1])
        fresh = self.redis.xreadgroup(CONSUMER_GROUP, consumer, {self.key: ">"}, count=count)
        return list(fresh[0][1]) if fresh else []

    def _live(self, entries: list[Any]) -> list[Entry]:
        """Pending entries whose message was trimmed away come back empty: acknowledge and skip them."""
        gone = [i for i, f in entries if not f]
        if gone:
            self.ack(gone)
        return [(i, f) for i, f in entries if f]

    def ack(self, ids: list[str]) -> None:
        if ids:
            self.redis.xack(self.key, CONSUMER_GROUP, *ids)

    def undelivered(self) -> bool:
        """Did entries arrive that the consumer group has not been given yet?"""
        last = self.redis.xinfo_stream(self.key)["last-generated-id"]
        for group in self.redis.xinfo_groups(self.key):
            if group["name"] == CONSUMER_GROUP:
                return bool(entry_id(last) > entry_id(group["last-delivered-id"]))
        return True

    def pending(self) -> int:
        return int(self.redis.xpending(self.key, CONSUMER_GROUP)["pending"])

    def length(self) -> int:
        return int(self.redis.xlen(self.key))

    def trim(self, above: int) -> None:
        """Drop entries every consumer group has acknowledged, once the stream is longer than ``above``.

        The floor is the oldest entry any group still has pending, else the last one any group was
        given: nothing unread or unacknowledged is ever trimmed, whoever else reads the stream.
        """
        if self.redis.xlen(self.key) <= above:
            return
        floors = []
        for group in self.redis.xinfo_groups(self.key):
            pending = self.redis.xpending(self.key, group["name"])
            if pending["pending"]:
                floors.append(entry_id(pending["min"]))
            else:  # everything up to the last delivered entry is acknowledged: keep what follows it
                ms, seq = entry_id(group["last-delivered-id"])
                floors.append((ms, seq + 1))
        if floors:
            ms, seq = min(floors)
            self.redis.xtrim(self.key, minid=f"{ms}-{seq}", approximate=False)
