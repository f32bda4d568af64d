"""Accept alert events: write each new one durably to the Redis event stream, drop what was seen.

The contract with the incident engine: for each event not yet marked ``<prefix>event:seen:<id>``,
``XADD <prefix>events * event <json>`` and mark it seen for 7 days (the effect of ``SET NX EX`` then
``XADD``). Both happen in one Lua script, so no other client sees one without the other and a crash
can never leave an event marked seen but not queued. Only after the script returned do
callers answer 202; then the engine is woken (best effort: it also polls on its beat tick).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from typing import Any

import redis

from notifier.domain.events import AlertEvent
from notifier.domain.model import to_iso
from notifier.errors import StoreUnavailable

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 7 * 24 * 3600
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


@dataclass
class Accepted:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def stream_key(prefix: str) -> str:
    return prefix + STREAM


def seen_key(prefix: str, event_id: str) -> str:
    return f"{prefix}event:seen:{event_id}"


def accept_events(app: Any, events: list[AlertEvent], *, wake: bool = True) -> Accepted:
    """Queue new events durably, report which were new and which were duplicates.

    Raises ``StoreUnavailable`` when Redis cannot take them (the API answers 503, so that
    Alertmanager retries). Events repeated within one call count once.
    """
    result = Accepted()
    unique: dict[str, AlertEvent] = {}
    for event in events:
        if event.id in unique:
            result.duplicates.append(event.id)
        else:
            unique[event.id] = event
    if unique:
        prefix = app.settings.redis.key_prefix
        ids = list(unique)
        keys = [stream_key(prefix), *(seen_key(prefix, i) for i in ids)]
        args = [SEEN_TTL_SECONDS, *(event_json(unique[i], i) for i in ids)]
        try:
            fresh = set(_script(app)(keys=keys, args=args))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot queue alert events: {type(exc).__name__}: {exc}") from exc
        for pos, event_id in enumerate(ids, start=1):
            (result.accepted if pos in fresh else result.duplicates).append(event_id)
    if wake and result.accepted:
        try:
            app.dispatcher.wake_engine()
        except Exception:  # the engine polls on its beat tick anyway; the events are safe in Redis
            log.warning("could not wake the incident engine; it will pick the events up on its tick",
                        exc_info=True)
    return result


def event_json(event: AlertEvent, event_id: str | None = None) -> str:
    """``json.dumps(event.to_dict())``, without ``dataclasses.asdict``'s deep copies.

    asdict deep-copies every datetime and dict and was two thirds of a webhook's CPU time; a test
    keeps this equal to ``to_dict()``.
    """
    data: dict[str, Any] = {f.name: getattr(event, f.name) for f in fields(event)}
    for key in ("starts_at", "received_at", "ends_at"):
        data[key] = to_iso(data[key])
    data["id"] = event_id or event.id
    return json.dumps(data, separators=(",", ":"))


def _script(app: Any) -> Any:
    # One registered script per client: redis-py runs EVALSHA and reloads it after a Redis restart.
    script = app.extras.get("ingest_script")
    if script is None or script.registered_client is not app.store.redis:
        script = app.store.redis.register_script(_ACCEPT)
        app.extras["ingest_script"] = script
    return script
