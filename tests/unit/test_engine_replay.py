"""Issue 13: a whole outage day replayed through the engine core (see tests/unit/engine_replay.py).

What a subscriber reads: how many posts, whether each was true when posted and for the settle window
after, whether every word is in the reader's language, the page's component states at chosen moments,
and whose words close the incident.
"""

from __future__ import annotations

import pytest

from notifier.engine.actions import OpenIncident, PostUpdate, ResolveIncident, SetComponentStatus
from notifier.engine.settings import parse_engine
from tests.unit.engine_replay import CHANNELS, SETTINGS, STAFF_RESOLVED, Replay, hms, render, run_day, words

SETTLE = parse_engine(SETTINGS).settle.seconds
INCIDENT_COMPONENTS = {"imap", "pop3", "smtp", "webmail", "homepage", "calendar"}


@pytest.fixture(scope="module")
def day() -> Replay:
    return run_day()


def test_each_channel_gets_six_incident_posts_and_two_maintenance_posts(day: Replay) -> None:
    for channel in CHANNELS:
        posts = day.channel_posts(channel)
        kinds = [p.kind for p in posts]
        assert kinds == ["maintenance", "maintenance", "open", "change", "change", "staff", "monitoring", "staff"], (
            channel,
            kinds,
        )
    # the spikes (SMTP, Webmail, DNS) and the alert during maintenance never reached anyone
    assert len(day.decisions("suppressed")) == 4


def test_every_engine_post_is_true_when_posted_and_for_the_settle_window_after(day: Replay) -> None:
    checked = 0
    for post in day.posts:
        if post.author != "engine" or post.kind == "maintenance":
            continue
        described = post.components if post.components is not None else {}
        # every moment from settle before the post (it settled) to settle after it (it stayed true)
        moments = [post.at - SETTLE, post.at, post.at + SETTLE] + [
            at for at, _ in day.truth if post.at - SETTLE <= at <= post.at + SETTLE
        ]
        for moment in moments:
            truth = {c: s for c, s in day.true_state(moment).items() if c in INCIDENT_COMPONENTS}
            assert described == truth, (post.kind, post.at, moment, described, truth)
        checked += 1
    assert checked == 4 * len(CHANNELS)


def test_the_engine_never_claims_a_finding_and_staff_close_the_incident(day: Replay) -> None:
    engine_statuses = {p.status for p in day.posts if p.author == "engine" and p.kind != "maintenance"}
    assert engine_statuses == {"investigating", "monitoring"}
    assert not [a for _, a in day.actions if isinstance(a, ResolveIncident)]
    for channel in CHANNELS:
        last = day.channel_posts(channel)[-1]
        assert (last.author, last.status, last.body) == ("staff", "resolved", STAFF_RESOLVED)
    (held,) = day.decisions("held")
    assert "staff have posted" in held[1].message and held[0] == pytest.approx(hms("12:40:25") + 300, abs=5)


def test_bursts_become_one_post_each(day: Replay) -> None:
    x = day.channel_posts("x")
    changes = [p for p in x if p.kind == "change"]
    # the fallback's resolves (11:20:00-11:20:14) and the relapse (11:30:00-11:30:12): one post each,
    # the settle window after the last change of the burst, the relapse not held by the budget
    assert [p.at for p in changes] == [pytest.approx(hms("11:20:14") + SETTLE, abs=5),
                                       pytest.approx(hms("11:30:12") + SETTLE, abs=5)]
    assert changes[1].at - changes[0].at < parse_engine(SETTINGS).budget.interval_seconds
    assert "worse: calendar, homepage, pop3, smtp, webmail" in day.decisions("published")[1][1].message
    (monitoring,) = [p for p in x if p.kind == "monitoring"]
    assert monitoring.at == pytest.approx(hms("12:40:25") + SETTLE, abs=5)


@pytest.mark.parametrize("lang, other", [("de", "en"), ("en", "de")])
def test_every_word_is_in_the_readers_language(day: Replay, lang: str, other: str) -> None:
    # the words only the other language uses: everything it renders, minus names both share
    # names both languages share, and "in", a word of both ("in progress", "in Betrieb")
    shared = {w for c in ("IMAP", "POP3", "SMTP", "Webmail", "Webmail 5.2", "in") for w in words(c)}
    foreign = set()
    for post in day.posts:
        foreign |= words(render(post, other, day.incident_names))
    own = set()
    for post in day.posts:
        own |= words(render(post, lang, day.incident_names))
    foreign -= shared
    for post in day.posts:
        text = render(post, lang, day.incident_names)
        assert not (words(text) & foreign), (lang, text, words(text) & foreign)
    # the incident's name and the configured per-language component names are used
    assert words(day.incident_names[lang]) <= own
    expected = {"de": ("startseite", "kalender", "störung"), "en": ("homepage", "calendar", "problems")}[lang]
    assert all(w in own for w in expected)
    # the internal storage cluster is never named by the engine, in any language
    engine_words = set()
    for post in day.posts:
        if post.author == "engine":
            engine_words |= words(render(post, lang, day.incident_names))
    assert not engine_words & {"storage", "speichercluster", "cluster"}


def test_status_page_components_follow_their_own_alerts(day: Replay) -> None:
    assert day.page_state("01:30:00")["webmail"] == "under_maintenance"
    assert day.page_state("03:00:00")["webmail"] == "operational"
    assert day.page_state("11:02:00") == {"webmail": "partial_outage", "imap": "major_outage", "pop3": "major_outage"}
    # POP3 and Webmail recover on the page (after their own resolve delay) while IMAP is still down
    assert day.page_state("11:21:00")["pop3"] == "major_outage"  # hysteresis: 120 s of its own
    after = day.page_state("11:25:00")
    assert (after["imap"], after["pop3"], after["webmail"]) == ("major_outage", "operational", "operational")
    relapse = day.page_state("11:31:30")
    assert {c: relapse[c] for c in INCIDENT_COMPONENTS} == {
        "imap": "major_outage", "pop3": "major_outage", "webmail": "partial_outage",
        "smtp": "major_outage", "homepage": "partial_outage", "calendar": "major_outage",
    }
    # all green on the page once each component's alerts cleared, while the incident is in monitoring
    assert set(day.page_state("12:43:00").values()) == {"operational"}
    assert not [a for _, a in day.actions if isinstance(a, SetComponentStatus) and a.component == "storage"]
    opened = [a for _, a in day.actions if isinstance(a, OpenIncident)]
    assert [set(o.components) for o in opened] == [{"imap", "pop3", "webmail"}]


def test_maintenance_is_logged_as_maintenance(day: Replay) -> None:
    first = day.decisions("suppressed")[0][1]
    assert "under maintenance (mnt1)" in first.message and "confirm delay" not in first.message
    assert first.maintenance == "mnt1"
    assert [d.message for _, d in day.decisions("suppressed")[1:]] == [
        "problem ended before the confirm delay (180s): nothing was published"
    ] * 3
    assert not [a for _, a in day.actions if isinstance(a, PostUpdate) and a.reason == "catch-up"]
