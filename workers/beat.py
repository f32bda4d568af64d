"""A beat scheduler that only ticks while it holds a Redis lock: two beat processes never double-schedule.

The lock is a key with a TTL, taken with SET NX and renewed by its holder through a compare-and-
renew script; if the holder dies, another beat takes over within ``LOCK_TTL`` seconds.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

import redis
from celery.beat import Scheduler

from notifier.store.redis_store import client_for

LOCK_TTL = 30.0
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class LockedScheduler(Scheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.app.conf.notifier_settings
        self._redis = client_for(settings, socket_timeout=5)  # follows a Sentinel failover by itself
        self._key = f"{settings.redis.key_prefix}beat:leader"
        # who holds the lock, for `notifier status`: host, pid and a random part (two beats on one host differ)
        self._token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._renew = self._redis.register_script(_RENEW)

    def is_leader(self) -> bool:
        try:
            return bool(self._renew(keys=[self._key], args=[self._token, int(LOCK_TTL * 1000)]))
        except redis.RedisError:
            return False  # cannot prove we lead: schedule nothing rather than twice

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.is_leader():
            return min(self.max_interval, 5.0)
        return float(min(super().tick(*args, **kwargs), LOCK_TTL / 3))

    def close(self) -> None:
        try:
            if self._redis.get(self._key) == self._token:
                self._redis.delete(self._key)
        except redis.RedisError:
            pass
        super().close()
