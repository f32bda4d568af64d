"""The op id of the write being served, when its caller asked for idempotency (the staff API's
``Idempotency-Key``, see ``notifier.api.idempotency``). ``incidents._commit`` records it in the same
Redis transaction as the write, and a later call with the same op returns that write instead of
making another.

``current_record``: the gate's record of the request (its Redis key and the request's fingerprint).
A route whose answer follows from the committed write alone (open, update, resolve, broadcast) gives it
a renderer (``answer_in_commit``); ``incidents._commit`` then writes the record as ``done`` with that
answer in the write's own transaction, and the gate, seeing the route answer exactly that, writes
nothing more. A crash between the commit and the answer replays the very answer the route would have
given.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifier.domain.model import Incident, IncidentUpdate

KEEP_SECONDS = 24 * 3600
current_op: contextvars.ContextVar[str | None] = contextvars.ContextVar("idempotency_op", default=None)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type and body."""

    status: int
    media_type: str
    body: bytes


Renderer = Callable[["Incident", "IncidentUpdate"], Answer]


KEEPS_ANSWER = "keeps_idempotent_answer"  # an endpoint's attribute: it calls answer_in_commit first thing


class Claimed(Exception):  # noqa: N818  (not an error: the gate answers for the key)
    """The key is not this request's to run: ``found`` is the record in its way (the gate answers a
    replay, 409 or 422), or Redis failed (``error``: the gate answers 503)."""

    def __init__(self, found: dict[str, Any] | None, error: Exception | None = None) -> None:
        super().__init__("Idempotency-Key taken" if error is None else f"Idempotency-Key not reserved: {error}")
        self.found, self.error = found, error


def same_request(made_by: str, fingerprint: str) -> None:
    """Claimed, for the gate's 422, when the op's write was made by a request with another fingerprint
    (the same Idempotency-Key with another method, path or body); '' on either side: not known."""
    if made_by and fingerprint and made_by != fingerprint:
        raise Claimed({"state": "done", "fp": made_by})


@dataclass
class Record:
    """The gate's record of one keyed request. Set by the gate (``key``, ``fingerprint``, ``pending``, and
    ``claim`` when the route reserves the key itself), shared by reference with the route's thread: the
    route sets ``render``, the write sets ``kept``."""

    key: str
    fingerprint: str
    pending: str = ""  # the pending value this request reserves the key with (its fingerprint and a nonce)
    claim: Callable[[], None] | None = None  # reserve the key on the caller's thread; raises Claimed
    reserved: bool = False  # the key is this request's (its record must be settled, or was kept)
    op_read: bool = False  # claim also read the op's commit: ``op_landed`` (None: none)
    op_landed: tuple[str, str] | None = None  # (incident, fingerprint of the request that wrote it)
    render: Renderer | None = None  # the route's answer for the committed write
    kept: Answer | None = None  # what the write's transaction recorded as this request's answer


current_record: contextvars.ContextVar[Record | None] = contextvars.ContextVar("idempotency_record", default=None)


def done_record(fingerprint: str, answer: Answer) -> str:
    """The kept answer, as the gate stores it under the record's key (and replays it)."""
    return json.dumps({"state": "done", "fp": fingerprint, "status": answer.status, "type": answer.media_type,
                       "body": answer.body.decode("utf-8", "replace")})


def answer_in_commit(render: Renderer) -> Record | None:
    """For a keyed request: reserve the key here, on the route's own thread, if the gate left that to
    the route (an endpoint marked ``KEEPS_ANSWER``: no thread hand-off of its own; raises Claimed when
    the key is taken), and have the write keep ``render(incident, update)`` as the answer in its own
    transaction. The record is returned; after the write, its ``kept`` is the answer to give (None:
    the write did not commit here, e.g. it had been committed by an earlier request with the key)."""
    record = current_record.get()
    if record is not None:
        if record.claim is not None and not record.reserved:
            record.claim()
        record.render = render
    return record
