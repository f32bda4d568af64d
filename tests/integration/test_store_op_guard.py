"""``commit_update(op=...)``, the store's half of "at most one commit per Idempotency-Key" (see
test_api_idempotency_race for the API's): the same cases against the in-memory store and the Redis
store. A guarded commit whose op has landed (before it, or while its ``prepare`` ran) writes nothing
and returns the commit that landed, ``already`` set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from notifier.clock import FakeClock
from notifier.domain.model import Impact, Incident, IncidentUpdate
from notifier.ports import NewNotice, UpdateCommit
from notifier.store.memory import MemoryStore
from notifier.store.redis_store import RedisStore

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryStore(FakeClock(T0), prefix="g:")
    return RedisStore(request.getfixturevalue("redis_client"), prefix="g:")


def opener(store: Any, op: str, during: Any = None) -> Any:
    """A ``prepare`` opening a new incident with one update of ``op`` and one ledger row; ``during()``
    runs inside it (another request's commit, landing under this one's transaction)."""
    new = Incident(id=store.next_id("brd"), name="Notice", status="broadcast", impact=Impact.NONE,
                   created_at=T0, kind="broadcast")

    def prepare(incident: Incident | None) -> UpdateCommit:
        if during is not None:
            during()
        inc = incident or new
        upd = IncidentUpdate(id=f"{inc.id}.1", incident_id=inc.id, number=1, status="broadcast",
                             body={"en": "once"}, created_at=T0, op_id=op)
        inc.updates = [upd]
        return UpdateCommit(inc, upd, notices=[NewNotice(f"{upd.id}:x", "x", upd.id, inc.id, 100.0, 10_000.0)],
                            op=op, op_ttl=60)

    return prepare


def test_a_guarded_commit_whose_op_landed_writes_nothing_and_returns_that_commit(store: Any) -> None:
    first = store.commit_update(None, opener(store, "op1"), op="op1")
    assert not first.already and store.op_incident("op1") == "brd1"
    late = store.commit_update(None, opener(store, "op1"), op="op1")  # brd2 would be its incident
    assert late.already and late.incident.id == "brd1" and late.update.id == "brd1.1"
    assert [i.id for i in store.list_incidents()] == ["brd1"]
    assert [r.notice_id for r in store.ledger.rows()] == ["brd1.1:x"]
    other = store.commit_update(None, opener(store, "op2"), op="op2")  # another op is another write
    assert not other.already and other.incident.id == "brd3"


@pytest.mark.integration
def test_a_commit_of_the_op_landing_under_the_guarded_transaction_aborts_it(redis_client: Any) -> None:
    store = RedisStore(redis_client, prefix="g:")
    landed: list[UpdateCommit] = []

    def retry_commits() -> None:  # once: the retry's commit, between the guard's GET and its EXEC
        if not landed:
            landed.append(store.commit_update(None, opener(store, "op1"), op="op1"))

    held = store.commit_update(None, opener(store, "op1", during=retry_commits), op="op1")
    (retry,) = landed
    assert not retry.already and retry.incident.id == "brd2"
    assert held.already and held.incident.id == "brd2"  # the EXEC aborted; the re-run found the retry's
    assert [i.id for i in store.list_incidents()] == ["brd2"]
    assert [r.notice_id for r in store.ledger.rows()] == ["brd2.1:x"]
