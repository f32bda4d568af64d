"""The op id of the write being served, when its caller asked for idempotency (the staff API's
``Idempotency-Key``, see ``notifier.api.idempotency``). ``incidents._commit`` records it in the same
Redis transaction as the write, and a later call with the same op returns that write instead of
making another."""

from __future__ import annotations

import contextvars

KEEP_SECONDS = 24 * 3600
current_op: contextvars.ContextVar[str | None] = contextvars.ContextVar("idempotency_op", default=None)
