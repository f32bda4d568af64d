"""The Bluesky channel over HTTP against the fake PDS: threads, deterministic keys, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from notifier.channels.bluesky import BlueskyChannel, BlueskySettings, graphemes, link_facets, record_key
from notifier.errors import OutcomeUnknown, Permanent, Transient
from tests.fakes.bluesky_api import HANDLE, PASSWORD, FakeBluesky
from tests.fakes.http_fake import Reply
from tests.fakes.social import context, incident, notice, send_all

pytestmark = pytest.mark.integration

UPDATES = [
    "We are investigating delayed mail delivery.",
    "We found the cause: a storage node ran out of disk space, so mail queues up. " * 4,
    "A fix is in place and the queues are draining.",
    "All delayed mail has been delivered.",
]


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    with FakeBluesky() as server:
        yield server


def channel(fake: FakeBluesky, password: str = PASSWORD, timeout: float = 5.0) -> BlueskyChannel:
    settings = BlueskySettings(type="bluesky", service_url=fake.url, identifier=HANDLE,
                               app_password=SecretStr(password))
    return BlueskyChannel("bsky", settings, context(timeout=timeout))


def test_four_updates_become_one_thread(fake: FakeBluesky) -> None:
    receipts = send_all(channel(fake), incident(UPDATES))
    posts = fake.posts()
    assert len(posts) == 5
    root = posts[0]
    assert "reply" not in root.value
    for earlier, later in zip(posts, posts[1:], strict=False):
        assert later.value["reply"]["parent"]["uri"] == earlier.uri
        assert later.value["reply"]["root"]["uri"] == root.uri
    assert all(graphemes(p.value["text"]) <= 300 for p in posts)
    link = root.value["facets"][0]
    assert link["features"][0]["uri"] == "https://status.example.com/incidents/inc42.html"
    assert receipts[0].url.endswith(f"/post/{root.rkey}")
    assert fake.logins == 1


def test_a_resend_after_a_lost_answer_cannot_post_twice(fake: FakeBluesky) -> None:
    chan = channel(fake, timeout=0.5)
    note = notice(incident(UPDATES[:1]), 1, "bsky")
    fake.inject("POST", "/xrpc/com.atproto.repo.createRecord", "stall_after_accept", seconds=1.5)
    # the answer is lost, but the record key says where to look: found at once, no unknown state
    receipt = chan.send(note, chan.render(note))
    assert len(fake.posts()) == 1 and receipt.remote_id == fake.posts()[0].uri
    assert len(fake.recorded("GET", "/xrpc/com.atproto.repo.getRecord")) == 1
    assert chan.idempotent  # so the ledger may simply send again: the PDS refuses the same key
    assert chan.send(note, chan.render(note)).remote_id == receipt.remote_id
    assert len(fake.posts()) == 1
    found = chan.reconcile(note)
    assert found is not None and found.remote_id == receipt.remote_id


def test_a_lost_answer_for_a_record_that_is_not_there_stays_unknown(fake: FakeBluesky) -> None:
    chan = channel(fake)
    note = notice(incident(UPDATES[:1]), 1, "bsky")
    fake.inject("POST", "/xrpc/com.atproto.repo.createRecord", "reply",
                reply=Reply(502, {"error": "UpstreamFailure", "message": "Upstream Failure"}))
    with pytest.raises(OutcomeUnknown):
        chan.send(note, chan.render(note))
    assert fake.posts() == []


def test_reconcile_says_not_posted(fake: FakeBluesky) -> None:
    assert channel(fake).reconcile(notice(incident(UPDATES[:1]), 1, "bsky")) is None


def test_an_expired_session_is_renewed_once(fake: FakeBluesky) -> None:
    chan = channel(fake)
    send_all(chan, incident(UPDATES[:1]))
    fake.expire_sessions()
    send_all(chan, incident(UPDATES[:1], incident_id="inc43"))
    assert fake.logins == 2 and len(fake.posts()) == 2


def test_a_wrong_app_password_is_permanent(fake: FakeBluesky) -> None:
    chan = channel(fake, password="wrong")
    note = notice(incident(UPDATES[:1]), 1, "bsky")
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "channels.bsky.app_password" in info.value.reason


def test_rate_limit_waits_for_the_reset(fake: FakeBluesky) -> None:
    fake.rate_limit_next(reset_in=300)
    chan = channel(fake)
    note = notice(incident(UPDATES[:1]), 1, "bsky")
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    assert 290 <= (info.value.retry_after or 0) <= 302


def test_record_keys_are_valid_tids_and_stable() -> None:
    at = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    keys = {record_key("inc1.1:bsky", at, 0), record_key("inc1.1:bsky", at, 0)}
    assert len(keys) == 1
    (key,) = keys
    assert len(key) == 13 and key[0] in "234567abcdefghij"
    assert record_key("inc1.1:bsky", at, 1) != key and record_key("inc1.2:bsky", at, 0) != key


@pytest.mark.parametrize(("text", "count"), [("a" * 300, 300), ("👩‍👩‍👧‍👦", 1), ("e\u0301", 1), ("日本", 2)])
def test_graphemes(text: str, count: int) -> None:
    assert graphemes(text) == count


def test_link_facets_use_utf8_byte_offsets() -> None:
    (facet,) = link_facets("Störung: https://status.example.com/x.")
    assert facet["index"] == {"byteStart": 10, "byteEnd": 10 + len("https://status.example.com/x")}
