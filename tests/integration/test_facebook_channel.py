"""The Facebook Page channel through requests, over HTTP, against the fake Graph API."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from notifier.channels.facebook import FacebookChannel, FacebookSettings
from notifier.errors import OutcomeUnknown, Permanent, ReconcileIncomplete, Transient
from tests.fakes.graph_api import PAGE_ID, TOKEN, FakeGraphApi
from tests.fakes.social import context, incident, notice, send_all

pytestmark = pytest.mark.integration

UPDATES = [
    "We are investigating delayed mail delivery.",
    "We found the cause: a storage node ran out of disk space.",
    "A fix is in place and the queues are draining.",
    "All delayed mail has been delivered.",
]
SECRET = "app-secret-1"


@pytest.fixture
def fake() -> Iterator[FakeGraphApi]:
    with FakeGraphApi(app_secret=SECRET) as server:
        yield server


def channel(fake: FakeGraphApi, **kw: object) -> FacebookChannel:
    settings = FacebookSettings.model_validate({
        "type": "facebook", "graph_url": fake.url, "api_version": "v21.0", "page_id": PAGE_ID,
        "page_token": SecretStr(TOKEN), "app_secret": SecretStr(SECRET), **kw})
    return FacebookChannel("fb", settings, context(timeout=kw.get("timeout", 5.0)))  # type: ignore[arg-type]


def test_four_updates_become_a_post_with_comments(fake: FakeGraphApi) -> None:
    receipts = send_all(channel(fake), incident(UPDATES))
    (post,) = fake.all_posts()
    assert "#INC42·1" in post.message and post.link == "https://status.example.com/incidents/inc42.html"
    assert [c.message.rsplit("\n", 1)[-1] for c in post.comments] == ["#INC42·2", "#INC42·3", "#INC42·4"]
    assert receipts[0].remote_id == post.id
    assert [r.remote_id for r in receipts[1:]] == [c.id for c in post.comments]
    assert {r.extra["post_id"] for r in receipts} == {post.id}
    assert post.edits == []  # edit_on_resolve is off by default
    # every call proved the app secret, and the token never went into a URL
    proof = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    for req in fake.recorded("POST"):
        assert req.form()["appsecret_proof"] == proof
        assert TOKEN not in req.path and not req.query


def test_follow_ups_as_new_posts(fake: FakeGraphApi) -> None:
    send_all(channel(fake, follow_ups="posts"), incident(UPDATES))
    posts = fake.all_posts()
    assert len(posts) == 4 and all(not p.comments for p in posts)
    assert [p.message.rsplit("\n", 1)[-1] for p in posts] == [f"#INC42·{n}" for n in (1, 2, 3, 4)]


def test_resolution_edits_the_original_post(fake: FakeGraphApi) -> None:
    send_all(channel(fake, edit_on_resolve=True), incident(UPDATES))
    (post,) = fake.all_posts()
    assert post.message.startswith("RESOLVED: Mail delivery delayed. All delayed mail has been delivered.")
    assert "#INC42·1" in post.message  # the original text, marker included, stays below
    assert len(post.edits) == 1 and len(post.comments) == 3


def test_an_expired_token_says_so_plainly(fake: FakeGraphApi) -> None:
    fake.expire()
    note = notice(incident(UPDATES[:1]), 1, "fb")
    chan = channel(fake)
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "access token has expired or is invalid" in info.value.reason
    assert "code 190/463" in info.value.reason
    assert fake.all_posts() == []


def test_a_wrong_app_secret_is_permanent(fake: FakeGraphApi) -> None:
    note = notice(incident(UPDATES[:1]), 1, "fb")
    chan = channel(fake, app_secret=SecretStr("not-the-secret"))
    with pytest.raises(Permanent) as info:
        chan.send(note, chan.render(note))
    assert "appsecret_proof" in info.value.reason


def test_throttling_honours_the_usage_header(fake: FakeGraphApi) -> None:
    fake.throttle_next(code=32, regain_minutes=3)
    note = notice(incident(UPDATES[:1]), 1, "fb")
    chan = channel(fake)
    with pytest.raises(Transient) as info:
        chan.send(note, chan.render(note))
    assert info.value.retry_after == 180
    assert fake.all_posts() == []
    chan.send(note, chan.render(note))  # the next try goes through
    assert len(fake.all_posts()) == 1


def test_a_timeout_after_the_post_reached_facebook_is_reconciled(fake: FakeGraphApi) -> None:
    chan = channel(fake, timeout=0.5)
    first = notice(incident(UPDATES[:2]), 1, "fb")
    fake.inject("POST", f"/v21.0/{PAGE_ID}/feed", "stall_after_accept", seconds=1.5)
    with pytest.raises(OutcomeUnknown):
        chan.send(first, chan.render(first))
    receipt = chan.reconcile(first)
    assert receipt is not None and receipt.remote_id == fake.all_posts()[0].id
    # a blind resend meets Facebook's duplicate check (506) and finds the post instead
    assert chan.send(first, chan.render(first)).remote_id == receipt.remote_id
    assert len(fake.all_posts()) == 1
    # the same for a comment
    second = notice(incident(UPDATES[:2]), 2, "fb", receipt.extra)
    assert chan.reconcile(second) is None
    fake.inject("POST", "/v21.0/", "stall_after_accept", seconds=1.5)
    with pytest.raises(OutcomeUnknown):
        chan.send(second, chan.render(second))
    found = chan.reconcile(second)
    assert found is not None and found.remote_id == fake.all_posts()[0].comments[0].id
    assert len(fake.all_posts()[0].comments) == 1


def test_a_graph_5xx_without_a_known_code_is_unknown(fake: FakeGraphApi) -> None:
    fake.error_next(500, 9999, "An unknown error occurred", kind="FacebookApiException")
    note = notice(incident(UPDATES[:1]), 1, "fb")
    chan = channel(fake)
    with pytest.raises(OutcomeUnknown):
        chan.send(note, chan.render(note))
    assert chan.reconcile(note) is None


def test_a_deleted_incident_post_makes_the_next_update_a_new_post(fake: FakeGraphApi) -> None:
    chan = channel(fake, edit_on_resolve=True)
    inc = incident(UPDATES)
    first = send_all(chan, incident(UPDATES[:1]))[0]
    with fake.lock:  # a person deletes the incident's post on Facebook
        post = fake.feed.pop()
        del fake.posts_by_id[post.id]
    last = notice(inc, 4, "fb", first.extra)  # the resolution: edit + comment, both targets gone
    receipt = chan.send(last, chan.render(last))
    (new,) = fake.all_posts()
    assert receipt.remote_id == new.id and "#INC42·4" in new.message
    assert chan.reconcile(last) is not None  # reconcile looks in the Page's posts, too


def test_reconcile_pages_through_everything_since_the_send(fake: FakeGraphApi) -> None:
    import time

    from tests.fakes.graph_api import Post

    chan = channel(fake)
    note = notice(incident(UPDATES[:1]), 1, "fb")
    since = time.time()
    receipt = chan.send(note, chan.render(note))
    for n in range(230):  # newer posts push the marker two pages deep
        post = Post(f"{PAGE_ID}_{9000 + n}", f"unrelated {n}", None, time.time())
        fake.feed.append(post)
    assert chan.reconcile(note, since=since) == receipt
    calls = fake.recorded("GET", f"/v21.0/{PAGE_ID}/posts")
    assert len(calls) == 3 and all(c.query.get("since") for c in calls)
    with pytest.raises(ReconcileIncomplete, match="reconcile_max_pages"):
        channel(fake, reconcile_max_pages=2).reconcile(note, since=since)
    fake.error_next(500, 2, "(#2) Service temporarily unavailable", method="GET")
    with pytest.raises(ReconcileIncomplete, match="to the end"):
        chan.reconcile(note, since=since)
