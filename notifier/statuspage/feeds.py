"""``history.atom`` and ``history.rss``: one entry per incident/maintenance, newest first.

Built with ElementTree so every piece of user text is escaped by the XML serialiser; the entry
content is the incident's timeline as escaped HTML, as Statuspage's own feeds do.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from notifier.domain.model import Incident, to_iso
from notifier.statuspage.i18n import label
from notifier.statuspage.json_api import newest_first
from notifier.statuspage.snapshot import Snapshot

FEED_LIMIT = 50
ATOM = "http://www.w3.org/2005/Atom"


def _timeline_html(inc: Incident, language: str) -> str:
    parts = []
    for upd in reversed(inc.updates):
        parts.append(
            f"<p><small>{html.escape(to_iso(upd.created_at) or '')}</small><br>"
            f"<strong>{html.escape(label(language, upd.status))}</strong> - "
            f"{html.escape(upd.text(language, language))}</p>"
        )
    return "".join(parts)


def feed_entries(snap: Snapshot) -> list[Incident]:
    shown = [i for i in snap.incidents if i.kind in ("incident", "maintenance")]
    return newest_first(shown)[:FEED_LIMIT]


def atom(snap: Snapshot, now: datetime, entries: list[Incident] | None = None) -> bytes:
    """``entries``: ``feed_entries(snap)`` when the caller has it already (one sort for both feeds)."""
    page, language = snap.page, snap.page.language
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": language})
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"tag:{_host(page.url)},2005:/history"
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "type": "text/html", "href": page.url})
    ET.SubElement(
        feed,
        f"{{{ATOM}}}link",
        {"rel": "self", "type": "application/atom+xml", "href": page.url + "history.atom"},
    )
    ET.SubElement(feed, f"{{{ATOM}}}title").text = f"{page.name} Status - Incident History"
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = to_iso(now)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = page.name
    for inc in entries if entries is not None else feed_entries(snap):
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"tag:{_host(page.url)},2005:Incident/{inc.id}"
        ET.SubElement(entry, f"{{{ATOM}}}published").text = to_iso(inc.created_at)
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = to_iso(inc.updated_at)
        ET.SubElement(
            entry,
            f"{{{ATOM}}}link",
            {"rel": "alternate", "type": "text/html", "href": page.incident_url(inc.id)},
        )
        ET.SubElement(entry, f"{{{ATOM}}}title").text = inc.title(page.language)
        ET.SubElement(entry, f"{{{ATOM}}}content", {"type": "html"}).text = _timeline_html(inc, language)
    return _serialise(feed)


def rss(snap: Snapshot, now: datetime, entries: list[Incident] | None = None) -> bytes:
    page, language = snap.page, snap.page.language
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    ET.SubElement(channel, "title").text = f"{page.name} Status - Incident History"
    ET.SubElement(channel, "link").text = page.url
    ET.SubElement(channel, "description").text = f"Statuspage - {page.name}"
    ET.SubElement(channel, "language").text = language
    ET.SubElement(channel, "lastBuildDate").text = format_datetime(now)
    for inc in entries if entries is not None else feed_entries(snap):
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = inc.title(language)
        ET.SubElement(item, "description").text = _timeline_html(inc, language)
        ET.SubElement(item, "pubDate").text = format_datetime(inc.created_at)
        ET.SubElement(item, "link").text = page.incident_url(inc.id)
        ET.SubElement(item, "guid", {"isPermaLink": "true"}).text = page.incident_url(inc.id)
    return _serialise(root)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


# Characters XML 1.0 does not allow at all (ElementTree writes them anyway and the feed stops parsing).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _serialise(root: ET.Element) -> bytes:
    for element in root.iter():
        if element.text:
            element.text = _NOT_XML.sub("", element.text)
        if element.tail:
            element.tail = _NOT_XML.sub("", element.tail)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
