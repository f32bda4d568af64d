"""Which parts of a multi-post thread are already out, kept in Redis so every worker sees it.

A thread is posted part by part; a crash or a rate limit between parts must not re-post the parts
that went out. Each posted part's remote id is appended at its index (only at that index, so two
racing writers cannot interleave), and the list lives 14 days. Without Redis (pure unit tests) the
progress is kept in memory.
"""

from __future__ import annotations

import threading
from typing import Any

TTL_SECONDS = 14 * 86400


class ProgressStore:
    """Thread progress in one Redis, under the installation's key prefix (the composition root makes it)."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def for_channel(self, channel: str) -> ThreadProgress:
        """The progress of one channel's threads; ``channel`` is e.g. ``x:<name>``."""
        return ThreadProgress(self.redis, self.prefix, channel)


def thread_progress(store: ProgressStore | None, prefix: str, channel: str) -> ThreadProgress:
    """``channel``'s progress from ``store``, or kept in this process when there is none (unit tests)."""
    return store.for_channel(channel) if store is not None else ThreadProgress(None, prefix, channel)


class ThreadProgress:
    def __init__(self, redis: Any, prefix: str, channel: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.channel = channel
        self._mem: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def key(self, notice_id: str) -> str:
        return f"{self.prefix}progress:{self.channel}:{notice_id}"

    def done(self, notice_id: str) -> list[str]:
        """Remote ids of the parts already posted, in order."""
        if self.redis is None:
            with self._lock:
                return list(self._mem.get(notice_id, []))
        return list(self.redis.lrange(self.key(notice_id), 0, -1))

    def remember(self, notice_id: str, index: int, remote_id: str) -> list[str]:
        """Record part ``index`` (0-based) if it is the next one; return the progress."""
        if self.redis is None:
            with self._lock:
                ids = self._mem.setdefault(notice_id, [])
                if len(ids) == index:
                    ids.append(remote_id)
                return list(ids)
        key = self.key(notice_id)
        pipe = self.redis.pipeline()
        if int(self.redis.llen(key)) == index:
            pipe.rpush(key, remote_id)
        pipe.expire(key, TTL_SECONDS)
        pipe.execute()
        return self.done(notice_id)
