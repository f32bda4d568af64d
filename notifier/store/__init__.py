"""The store adapters: the ports of ``notifier/ports.py`` on Redis, and in memory.

- ``redis_store.py``: ``RedisStore`` (incidents, component status, op markers) and ``connect``
- ``ledger.py``: the delivery ledger's Lua state machine
- ``engine_state.py``: the incident engine's documents, journal, maps, logs and lock
- ``events.py``: the accepted alert events stream and its consumer group
- ``memory.py``: all of the above in memory, same semantics (unit tests; kept honest by
  ``tests/integration/test_store_contract.py``)
- ``local_redis.py``: the private redis-server ``make run`` and the tests start

Each Redis module documents its key layout in its docstring; no other module knows a key.
"""
