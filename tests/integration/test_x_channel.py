"""The X channel through tweepy and requests, over HTTP, against the fake X API v2."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from notifier.channels.x import XChannel, XSettings
from notifier.clock import FakeClock
from notifier.errors import OutcomeUnknown, Permanent, ReconcileIncomplete, Transient
from tests.fakes.http_fake import Reply
from tests.fakes.social import context, incident, notice, send_all
from tests.fakes.x_api import USER_ID, FakeXApi, Tweet

pytestmark = pytest.mark.integration

UPDATES = [
    "We are investigating delayed mail delivery.",
    "We found the cause: a storage node ran out of disk space, so incoming mail queues up on the "
    "gateways. " * 4,
    "A fix is in place and the queues are draining. We keep watching.",
    "All delayed mail has been delivered. Sorry for the trouble.",
]


@pytest.fixture
def fake() -> Iterator[FakeXApi]:
    server = FakeXApi().start()
    yield server
    if server.thread.is_alive():
        server.stop()


def oauth1(fake: FakeXApi, **kw: object) -> XSettings:
    return XSettings.model_validate({
        "type": "x", "api_base_url": fake.url, "consumer_key": SecretStr("consumer-key-1"),
        "consumer_secret": SecretStr("consumer-secret"), "access_token": SecretStr("access-token-1"),
        "access_token_secret": SecretStr("access-secret"), **kw})


def oauth2(fake: FakeXApi, **kw: object) -> XSettings:
    return XSettings.model_validate({"type": "x", "api_base_url": fake.url,
                                     "user_token": SecretStr("oauth2-user-token-1"), **kw})


@pytest.mark.parametrize("make_settings", [oauth1, oauth2], ids=["oauth1", "oauth2-user"])
def test_four_updates_become_one_thread(fake: FakeXApi, make_settings) -> None:
    chan = XChannel("x", make_settings(fake), context())
    inc = incident(UPDATES)
    receipts = send_all(chan, inc)
    posts = fake.posts()
    # update 2 is long: two parts; so five posts, each replying to the one before
    assert len(posts) == 5
    assert posts[0].in_reply_to is None
    assert [p.in_reply_to for p in posts[1:]] == [p.id for p in posts[:-1]]
    assert [p.text.count("#INC42·") for p in posts] == [1] * 5
    assert "#INC42·2 1/2" in posts[1].text and "#INC42·2 2/2" in posts[2].text
    assert all("https://status.example.com/incidents/inc42.html" in posts[i].text for i in (0, 1, 3, 4))
    assert receipts[1].extra["thread_ids"] == f"{posts[1].id},{posts[2].id}"
    assert {r.extra["root_id"] for r in receipts} == {posts[0].id}
    assert receipts[3].url.endswith(f"/status/{posts[4].id}")
    # the right credential reached the far end, at the configured base URL, never api.twitter.com
    auth = fake.recorded("POST", "/2/tweets")[0].headers["authorization"]
    assert auth.startswith("OAuth " if make_settings is oauth1 else "Bearer oauth2-user-token-1")


def test_a_rate_limit_is_waited_out(fake: FakeXApi) -> None:
    # the channel's clock starts at the real time (X's reset header is real epoch seconds) and moves
    # only when told: waiting out the reset is an advance, not a sleep
    clock = FakeClock(datetime.now(UTC))
    chan = XChannel("x", oauth1(fake), dataclasses.replace(context(), clock=clock))
    note = notice(incident(UPDATES[:1]), 1, "x")
    fake.rate_limit_next(reset_in=1)
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    wait = info.value.retry_after
    assert wait is not None and 1 <= wait <= 3
    # before the reset the shared budget refuses at once, without bothering X
    with pytest.raises(Transient):
        chan.send(note, chan.render(note))
    assert len(fake.recorded("POST", "/2/tweets")) == 1
    clock.advance(wait - 0.5)
    with pytest.raises(Transient):  # still half a second before the reset: closed
        chan.send(note, chan.render(note))
    assert len(fake.recorded("POST", "/2/tweets")) == 1
    clock.advance(0.5)
    receipt = chan.send(note, chan.render(note))
    assert [p.id for p in fake.posts()] == [receipt.remote_id]


def test_a_429_without_reset_backs_off_within_a_bound(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    fake.rate_limit_next(reset_in=None)
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    # was a fixed 60 s for ever (the bug of issue 10): now 60 s and more, growing per 429 to a bound
    assert info.value.retry_after is not None and 60 <= info.value.retry_after <= 75
    t = chan.context.clock.timestamp() + 7200  # past that first block
    waits = []
    for _ in range(12):  # each further 429 comes once the previous block is over
        waits.append(chan.budget.backoff_429(t))
        t += waits[-1]
    assert waits[1] >= 120 and waits[3] >= 480 and max(waits) <= 3600 and waits[-1] == 3600
    chan.budget.clear_429()
    assert chan.budget.backoff_429(t) <= 75
    # a 429 while the account is closed was in flight when the block began: it waits for that block
    # and does not lengthen the streak
    assert chan.budget.backoff_429(t + 10) == pytest.approx(chan.budget.backoff_429(t) - 10)
    for _ in range(5):  # retried eagerly anyway: no request reaches X, no tight loop against it
        with pytest.raises(Transient):
            chan.send(note, chan.render(note))
    assert len(fake.recorded("POST", "/2/tweets")) == 1
    assert fake.posts() == []


def test_a_timeout_after_the_post_reached_x_is_reconciled_never_posted_twice(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake, timeout=0.5), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    fake.inject("POST", "/2/tweets", "stall_after_accept", seconds=1.5)
    with pytest.raises(OutcomeUnknown):
        chan.send(note, chan.render(note))
    assert len(fake.posts()) == 1  # it is out, though we never heard back
    receipt = chan.reconcile(note)
    assert receipt is not None and receipt.remote_id == fake.posts()[0].id
    # and a blind resend (say a person forced it) is caught by X's duplicate check plus our lookup
    again = chan.send(note, chan.render(note))
    assert again.remote_id == receipt.remote_id
    assert len(fake.posts()) == 1


def test_a_5xx_is_unknown_and_reconcile_says_not_posted(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth2(fake), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    fake.inject("POST", "/2/tweets", "reply", reply=Reply(503, {"title": "Service Unavailable",
                                                               "detail": "Service Unavailable",
                                                               "type": "about:blank", "status": 503}))
    with pytest.raises(OutcomeUnknown):
        chan.send(note, chan.render(note))
    assert chan.reconcile(note) is None  # provably not out: the ledger may send again
    chan.send(note, chan.render(note))
    assert len(fake.posts()) == 1
    assert fake.recorded("GET", "/2/users/me")  # reconcile found the account id itself
    assert fake.recorded("GET", f"/2/users/{USER_ID}/tweets")


def test_a_thread_interrupted_half_way_continues_without_reposting(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake), context())
    inc = incident(UPDATES[:2])
    first = send_all(chan, incident(UPDATES[:1]))[0]
    note = notice(inc, 2, "x", first.extra)
    rendering = chan.render(note)
    assert len(rendering.parts) == 2
    fake.inject("POST", "/2/tweets", "drop")  # part 1 is accepted, the connection dies unanswered
    fake.inject("POST", "/2/tweets", "reply", reply=Reply(503, {"title": "Service Unavailable"}))
    with pytest.raises(OutcomeUnknown):
        chan.send(note, rendering)
    assert chan.reconcile(note) is None  # part 1 found and remembered, part 2 missing
    with pytest.raises(OutcomeUnknown):  # part 2 meets a 503 (it did not take effect)
        chan.send(note, rendering)
    assert chan.reconcile(note) is None
    receipt = chan.send(note, rendering)
    posts = fake.posts()
    assert len(posts) == 3
    assert receipt.extra["thread_ids"] == f"{posts[1].id},{posts[2].id}"
    assert posts[2].in_reply_to == posts[1].id and posts[1].in_reply_to == posts[0].id


def test_an_expired_token_is_a_clear_permanent_error(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake), context())
    fake.revoke("access-token-1")
    note = notice(incident(UPDATES[:1]), 1, "x")
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "401" in info.value.reason and "access_token" in info.value.reason
    assert fake.posts() == []


def test_an_app_only_bearer_token_is_refused_with_the_reason(fake: FakeXApi) -> None:
    settings = XSettings(type="x", api_base_url=fake.url, user_token=SecretStr("app-only-bearer-1"))
    chan = XChannel("x", settings, context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "Unsupported Authentication" in info.value.reason and "app-only" in info.value.reason


def test_x_headers_close_the_budget_before_x_says_429(fake: FakeXApi) -> None:
    fake.state.post_limit_15min = 3
    chan = XChannel("x", oauth1(fake), context())
    inc = incident([f"Update {i}" for i in range(1, 6)])
    for number in (1, 2, 3):
        chan.send(notice(inc, number, "x"), chan.render(notice(inc, number, "x")))
    with pytest.raises(Transient) as info:  # remaining: 0 came back with post 3
        chan.send(notice(inc, 4, "x"), chan.render(notice(inc, 4, "x")))
    assert "budget" in info.value.reason and info.value.retry_after > 800
    assert len(fake.recorded("POST", "/2/tweets")) == 3


def test_a_refused_connection_is_transient(fake: FakeXApi) -> None:
    url = fake.url
    fake.stop()  # nothing listens on the port any more
    chan = XChannel("x", XSettings(type="x", api_base_url=url, user_token=SecretStr("oauth2-user-token-1")),
                    context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    assert "cannot reach X" in info.value.reason


def test_reconcile_counts_the_thread_as_posted_even_if_templates_changed(fake: FakeXApi, tmp_path) -> None:
    chan = XChannel("x", oauth1(fake), context())
    inc = incident(UPDATES[:2])
    note = notice(inc, 2, "x")
    rendering = chan.render(note)
    assert len(rendering.parts) == 2
    chan.send(note, rendering)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "update.en.j2").write_text("short now")  # a later template edit
    edited = XChannel("x2", oauth1(fake), context(templates_dir=str(tmp_path)))
    assert len(edited.render(note).parts) == 1
    receipt = edited.reconcile(note)
    assert receipt is not None and receipt.extra["thread_ids"] == ",".join(p.id for p in fake.posts())


def test_a_deleted_previous_post_starts_a_new_thread(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake), context())
    inc = incident(UPDATES)
    first = send_all(chan, incident(UPDATES[:1]))[0]
    with fake.lock:  # a person deletes the incident's post on X
        fake.state.tweets.clear()
    note = notice(inc, 3, "x", first.extra)
    receipt = chan.send(note, chan.render(note))
    (post,) = fake.posts()
    assert post.in_reply_to is None and receipt.extra["root_id"] == post.id


def test_reconcile_reads_every_page_since_the_send_and_finds_a_deep_marker(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    since = time.time()
    chan.send(note, chan.render(note))
    for n in range(250):  # the marker sinks below two and a half pages of newer posts
        fake.state.tweets.append(Tweet(str(next(fake._ids)), f"unrelated {n}", USER_ID, None, time.time()))
    receipt = chan.reconcile(note, since=since)
    assert receipt is not None and receipt.remote_id == fake.posts()[0].id
    pages = fake.recorded("GET", f"/2/users/{USER_ID}/tweets")
    assert len(pages) == 3 and all("start_time" in p.query for p in pages)


def test_reconcile_that_cannot_cover_the_range_says_so_instead_of_not_posted(fake: FakeXApi) -> None:
    chan = XChannel("x", oauth1(fake, reconcile_max_pages=2), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    since = time.time() - 60
    for n in range(250):
        fake.state.tweets.append(Tweet(str(next(fake._ids)), f"unrelated {n}", USER_ID, None, time.time()))
    with pytest.raises(ReconcileIncomplete, match="reconcile_max_pages"):
        chan.reconcile(note, since=since)
    fake.state.tweets.clear()
    fake.inject("GET", f"/2/users/{USER_ID}/tweets", "reply", reply=Reply(503, {"title": "Service Unavailable"}))
    with pytest.raises(ReconcileIncomplete, match="to the end"):
        chan.reconcile(note, since=since)
    assert chan.reconcile(note, since=since) is None  # a complete, empty search: provably not out


def test_reconcile_right_after_the_send_waits_for_a_lagging_timeline(fake: FakeXApi) -> None:
    fake.state.timeline_lag = 3600.0
    chan = XChannel("x", oauth1(fake, timeout=0.5), context())
    note = notice(incident(UPDATES[:1]), 1, "x")
    since = time.time()
    chan.send(note, chan.render(note))
    with pytest.raises(ReconcileIncomplete, match="lag") as caught:
        chan.reconcile(note, since=since)  # not listed yet; "absent" would be a guess
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
