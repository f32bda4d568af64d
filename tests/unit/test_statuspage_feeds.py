"""history.atom / history.rss parse with feedparser, with user text escaped."""

from __future__ import annotations

import feedparser

from notifier.statuspage import feeds
from tests.fakes.statuspage_model import EVIL, NOW, sample_snapshot


def test_atom_parses_with_one_entry_per_incident_newest_first() -> None:
    parsed = feedparser.parse(feeds.atom(sample_snapshot(), NOW))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Example Mail Status - Incident History"
    assert [e.title for e in parsed.entries] == [
        "IMAP outage",
        "SMTP relay move",
        "Webmail upgrade",
        "IMAP logins slow",
    ]
    first = parsed.entries[0]
    assert first.link == "https://status.example.com/incidents/inc2.html"
    assert first.id == "tag:status.example.com,2005:Incident/inc2"
    assert first.updated_parsed[:5] == (2026, 11, 24, 11, 30)
    content = first.content[0].value
    assert content.index("A storage node failed.") < content.index("IMAP is down for everyone.")


def test_rss_parses() -> None:
    parsed = feedparser.parse(feeds.rss(sample_snapshot(), NOW))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert len(parsed.entries) == 4
    assert parsed.entries[3].title == "IMAP logins slow"
    assert parsed.entries[3].link == "https://status.example.com/incidents/inc1.html"
    assert parsed.entries[3].published_parsed[:3] == (2026, 11, 14)
    assert "Fixed." in parsed.entries[3].description


def test_feeds_escape_user_text() -> None:
    snap = sample_snapshot(evil=True)
    for raw in (feeds.atom(snap, NOW), feeds.rss(snap, NOW)):
        assert b"<script>" not in raw  # the XML carries it escaped
        parsed = feedparser.parse(raw)
        assert not parsed.bozo
        assert parsed.entries[0].title == f"IMAP outage {EVIL}"  # round-trips as text
