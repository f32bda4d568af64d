"""The Mastodon channel over HTTP against the fake server: threads, Idempotency-Key, reconcile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from notifier.channels.mastodon import MastodonChannel, MastodonSettings, mastodon_length, plain_text
from notifier.errors import OutcomeUnknown, Permanent, ReconcileIncomplete, Transient
from tests.fakes.mastodon_api import TOKEN, FakeMastodon
from tests.fakes.social import context, incident, notice, send_all

pytestmark = pytest.mark.integration

UPDATES = [
    "We are investigating delayed mail delivery.",
    "We found the cause: a storage node ran out of disk space & mail queues up. " * 9,
    "A fix is in place and the queues are draining.",
    "All delayed mail has been delivered.",
]


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon() as server:
        yield server


def channel(fake: FakeMastodon, **kw: object) -> MastodonChannel:
    settings = MastodonSettings.model_validate({"type": "mastodon", "base_url": fake.url,
                                                "access_token": SecretStr(TOKEN), **kw})
    return MastodonChannel("masto", settings, context(timeout=float(kw.get("timeout", 5.0))))  # type: ignore[arg-type]


def test_four_updates_become_one_thread(fake: FakeMastodon) -> None:
    receipts = send_all(channel(fake), incident(UPDATES))
    posts = fake.posts()
    assert len(posts) == 5  # update 2 is over 500 characters: two statuses
    assert [p.in_reply_to_id for p in posts] == [None] + [p.id for p in posts[:-1]]
    assert all(mastodon_length(p.text) <= 500 for p in posts)
    assert "#INC42·2 1/2" in posts[1].text and "#INC42·2 2/2" in posts[2].text
    assert receipts[3].extra["root_id"] == posts[0].id
    assert {p.visibility for p in posts} == {"public"} and {p.language for p in posts} == {"en"}


def test_a_timeout_after_posting_is_reconciled_and_a_resend_is_idempotent(fake: FakeMastodon) -> None:
    chan = channel(fake, timeout=0.5)
    note = notice(incident(UPDATES[:1]), 1, "masto")
    fake.inject("POST", "/api/v1/statuses", "stall_after_accept", seconds=1.5)
    with pytest.raises(OutcomeUnknown):
        chan.send(note, chan.render(note))
    found = chan.reconcile(note)  # the marker is found in the HTML content
    assert found is not None and found.remote_id == fake.posts()[0].id
    again = chan.send(note, chan.render(note))  # same Idempotency-Key: the same status comes back
    assert again.remote_id == found.remote_id and len(fake.posts()) == 1


def test_reconcile_says_not_posted_when_it_is_not_there(fake: FakeMastodon) -> None:
    send_all(channel(fake), incident(["Another incident mentions #INC42·10"], incident_id="inc7"))
    note = notice(incident(UPDATES[:1]), 1, "masto")
    assert channel(fake).reconcile(note) is None


def test_rate_limit_waits_until_the_iso_reset(fake: FakeMastodon) -> None:
    fake.rate_limit_next(reset_in=120)
    note = notice(incident(UPDATES[:1]), 1, "masto")
    chan = channel(fake)
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    assert 110 <= (info.value.retry_after or 0) <= 122
    assert fake.posts() == []


def test_a_revoked_token_is_permanent(fake: FakeMastodon) -> None:
    fake.tokens.clear()
    note = notice(incident(UPDATES[:1]), 1, "masto")
    chan = channel(fake)
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "access token" in info.value.reason and "channels.masto.access_token" in info.value.reason


def test_a_deleted_previous_status_starts_a_new_thread(fake: FakeMastodon) -> None:
    chan = channel(fake)
    first = send_all(chan, incident(UPDATES[:1]))[0]
    with fake.lock:
        fake.statuses.clear()
    note = notice(incident(UPDATES), 3, "masto", first.extra)
    receipt = chan.send(note, chan.render(note))
    (post,) = fake.posts()
    assert post.in_reply_to_id is None and receipt.extra["root_id"] == post.id


@pytest.mark.parametrize(
    ("text", "length"),
    [("a" * 500, 500), ("see https://example.com/" + "x" * 100, 27), ("hi @ops@mastodon.example", 7),
     ("😀", 1)],
)
def test_mastodon_length(text: str, length: int) -> None:
    assert mastodon_length(text) == length


def test_plain_text_reads_mastodon_html() -> None:
    html = '<p>Fixed &amp; done<br />now</p><p><a href="x" class="hashtag">#<span>INC4·3</span></a></p>'
    assert plain_text(html) == "Fixed & done\nnow\n#INC4·3"


def test_a_thread_interrupted_past_the_idempotency_window_continues_instead_of_restarting(
    fake: FakeMastodon,
) -> None:
    """Review finding: part 1 went out, part 2 hit the 3-hour status limit, and once Mastodon had
    forgotten the Idempotency-Key (about an hour) every retry posted part 1 again."""
    chan = channel(fake)
    note = notice(incident(UPDATES[:2]), 2, "masto")  # over 500 characters: a 2-part thread
    fake.limit = 1  # room for one status in this 3-hour window
    with pytest.raises(Transient):
        chan.send(note, chan.render(note))
    assert len(fake.posts()) == 1
    fake.keys.clear()  # hours later: the instance forgot the Idempotency-Keys ...
    fake.limit = 300  # ... and the window has room again
    receipt = chan.send(note, chan.render(note))
    posts = fake.posts()
    assert len(posts) == 2 and "1/2" in posts[0].text and "2/2" in posts[1].text
    assert posts[1].in_reply_to_id == posts[0].id
    assert receipt.extra["thread_ids"] == f"{posts[0].id},{posts[1].id}"


def test_reconcile_pages_back_to_the_send_and_says_when_it_cannot(fake: FakeMastodon) -> None:
    import time

    from tests.fakes.mastodon_api import Status

    note = notice(incident(UPDATES[:1]), 1, "masto")
    since = time.time()
    receipt = channel(fake).send(note, channel(fake).render(note))
    for n in range(90):  # the status sinks below two pages of 40
        fake.statuses.append(Status(str(next(fake._ids)), f"unrelated {n}", None, time.time(), "public", "en"))
    assert channel(fake).reconcile(note, since=since).remote_id == receipt.remote_id
    assert len(fake.recorded("GET", "/api/v1/accounts/")) >= 3
    with pytest.raises(ReconcileIncomplete, match="reconcile_max_pages"):
        channel(fake, reconcile_max_pages=2).reconcile(note, since=since)
