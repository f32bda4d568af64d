"""Subscribers in Redis, and the e-mail channel's per-notice recipient lists and progress.

Keys (under ``redis.key_prefix``):

- ``subscribers``: hash, address -> JSON {scope, language, requested_at, confirmed_at}. Only confirmed
  subscribers are here; nothing else about them is stored.
- ``subscribers:limit:<kind>:<key>``: fixed-window counters of the public sign-up endpoint.
- ``subscribers:hooks``: hash, receiver URL -> JSON {scope, language, requested_at, confirmed_at,
  failures}: the confirmed webhook subscribers.
- ``mail:rcpt:<notice id>``: the recipients of one notice (JSON ``[[address, language], ...]``; URLs for the
  webhook subscribers' channel), fixed
  the first time the notice is sent (SET NX), so a resumed send goes to the same people in the same order.
- ``mail:done:<notice id>``: how many of them the relay has accepted (written after each 250; the
  channel overlaps the write with the next message's envelope and body, see ``DoneWriter``).
- ``hooks:retry:<notice id>``: hash, receiver URL -> attempts, of the webhook receivers that answered
  with a temporary failure and get the notice again later.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from notifier.domain.subscribers import Subscriber, WebhookSubscriber

KEEP_SECONDS = 14 * 86400  # recipient lists and progress outlive any notice's deadline


class RedisSubscribers:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.key = f"{prefix}subscribers"
        self.hooks_key = f"{prefix}subscribers:hooks"

    # ---- the subscribers --------------------------------------------------------------------------
    def save(self, subscriber: Subscriber) -> bool:
        """Store (or replace) a confirmed subscriber; True when the address was new."""
        return bool(self.redis.hset(self.key, subscriber.address, subscriber.to_json()))

    def get(self, address: str) -> Subscriber | None:
        raw = self.redis.hget(self.key, address)
        return Subscriber.from_json(address, raw) if raw is not None else None

    def delete(self, address: str) -> bool:
        return bool(self.redis.hdel(self.key, address))

    def all(self) -> list[Subscriber]:
        """Every confirmed subscriber, ordered by address."""
        rows = self.redis.hgetall(self.key)
        out = [Subscriber.from_json(_text(a), raw) for a, raw in rows.items()]
        return sorted(out, key=lambda s: s.address)

    def count(self) -> int:
        return int(self.redis.hlen(self.key))

    # ---- webhook subscribers ----------------------------------------------------------------------
    def save_hook(self, hook: WebhookSubscriber) -> bool:
        """Store (or replace) a confirmed webhook subscriber; True when the URL was new."""
        return bool(self.redis.hset(self.hooks_key, hook.url, hook.to_json()))

    def get_hook(self, url: str) -> WebhookSubscriber | None:
        raw = self.redis.hget(self.hooks_key, url)
        return WebhookSubscriber.from_json(url, raw) if raw is not None else None

    def delete_hook(self, url: str) -> bool:
        return bool(self.redis.hdel(self.hooks_key, url))

    def hooks(self) -> list[WebhookSubscriber]:
        """Every confirmed webhook subscriber, ordered by URL."""
        rows = self.redis.hgetall(self.hooks_key)
        return sorted((WebhookSubscriber.from_json(_text(u), raw) for u, raw in rows.items()), key=lambda h: h.url)

    def hook_outcome(self, url: str, ok: bool, limit: int) -> str:
        """Record one delivery to ``url``: a success clears its failure count, a failure adds one and at
        ``limit`` in a row removes the subscriber. Returns ``ok``, ``failed`` or ``removed`` (or
        ``gone`` when it was removed meanwhile). Atomic (WATCH/MULTI), so two workers never lose a count."""
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.hooks_key)
                    raw = pipe.hget(self.hooks_key, url)
                    if raw is None:
                        pipe.unwatch()
                        return "gone"
                    hook = WebhookSubscriber.from_json(url, raw)
                    failures = 0 if ok else hook.failures + 1
                    pipe.multi()
                    if failures >= limit:
                        pipe.hdel(self.hooks_key, url)
                    elif failures != hook.failures:
                        pipe.hset(self.hooks_key, url, WebhookSubscriber(
                            url, hook.scope, hook.language, hook.requested_at, hook.confirmed_at, failures).to_json())
                    pipe.execute()
                    return "ok" if ok else ("removed" if failures >= limit else "failed")
                except redis.WatchError:
                    continue

    # ---- one notice's receivers to try again (the webhook subscribers' channel) ---------------------
    def hook_retries(self, notice_id: str) -> dict[str, int]:
        """The receivers of ``notice_id`` that answered with a temporary failure: URL -> attempts so far."""
        rows = self.redis.hgetall(f"{self.prefix}hooks:retry:{notice_id}")
        return {_text(url): int(n) for url, n in rows.items()}

    def set_hook_retry(self, notice_id: str, url: str, attempts: int | None) -> None:
        """Record one more attempt for ``url`` (``attempts``), or None: it needs no more."""
        name = f"{self.prefix}hooks:retry:{notice_id}"
        if attempts is None:
            self.redis.hdel(name, url)
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(name, url, attempts)
        pipe.expire(name, KEEP_SECONDS)
        pipe.execute()

    # ---- the public endpoint's limits -------------------------------------------------------------
    def hit(self, kind: str, key: str, limit: int, window: float) -> float | None:
        """Count one request of ``kind`` by ``key``; None if within ``limit`` per ``window``, else the
        seconds until the window ends."""
        name = f"{self.key}:limit:{kind}:{key}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(name)
        pipe.expire(name, max(int(window), 1), nx=True)
        pipe.ttl(name)
        count, _, ttl = pipe.execute()
        return None if int(count) <= limit else float(max(int(ttl), 1))

    # ---- one notice's recipients and progress (the e-mail channel) ---------------------------------
    def recipients(self, notice_id: str, make: Any) -> list[tuple[str, str]]:
        """The recipients fixed for ``notice_id``; the first call stores ``make()``'s list."""
        name = f"{self.prefix}mail:rcpt:{notice_id}"
        raw = self.redis.get(name)
        if raw is None:
            self.redis.set(name, json.dumps(make(), separators=(",", ":")), nx=True, ex=KEEP_SECONDS)
            raw = self.redis.get(name)
        return [(str(a), str(lang)) for a, lang in json.loads(raw)]

    def done(self, notice_id: str) -> int:
        raw = self.redis.get(f"{self.prefix}mail:done:{notice_id}")
        return int(raw) if raw is not None else 0

    def set_done(self, notice_id: str, count: int) -> None:
        self.redis.set(f"{self.prefix}mail:done:{notice_id}", count, ex=KEEP_SECONDS)

    def done_writer(self, notice_id: str) -> DoneWriter:
        """``set_done`` split in two, on one connection for a whole send (see ``DoneWriter``)."""
        return DoneWriter(self.redis.connection_pool, f"{self.prefix}mail:done:{notice_id}")


class DoneWriter:
    """``start(count)`` writes the SET to Redis now; ``wait()`` waits for its answer (raising what ``set_done``
    would; nothing when no write is pending). In between the caller's thread is free: the e-mail channel
    sends the next message's envelope and body meanwhile and waits before that message's end of data, so
    the round trip (an fsync with ``appendfsync always``) costs nothing on its own. One pool connection is
    held from the first ``start`` to ``close``."""

    def __init__(self, pool: Any, key: str) -> None:
        self.pool = pool
        self.key = key
        self.conn: Any = None
        self.pending = False

    def start(self, count: int) -> None:
        assert not self.pending, "wait() for the previous write first"
        if self.conn is None:
            self.conn = self.pool.get_connection()
        try:
            self.conn.send_command("SET", self.key, count, "EX", KEEP_SECONDS)
        except BaseException:
            self._drop()
            raise
        self.pending = True

    def wait(self) -> None:
        if not self.pending:
            return
        self.pending = False
        try:
            self.conn.read_response()
        except BaseException:
            self._drop()  # a half-read answer must not reach the pool's next user
            raise

    def close(self) -> None:
        if self.pending:  # an answer never read: the connection cannot go back as it is
            self._drop()
        elif self.conn is not None:
            self.pool.release(self.conn)
            self.conn = None

    def _drop(self) -> None:
        self.pending = False
        if self.conn is not None:
            self.conn.disconnect()
            self.pool.release(self.conn)
            self.conn = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
