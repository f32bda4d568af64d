"""The static site, rendered from a model built here (no store, no network)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from notifier.config import ComponentSettings
from notifier.domain.model import ComponentChange, ComponentStatus, Impact, Incident
from notifier.statuspage.generator import RenderCache, build_site, render_site
from notifier.statuspage.snapshot import Snapshot, public_incident
from tests.fakes.statuspage_model import EVIL, NOW, sample_snapshot, update


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.landmarks: set[str] = set()
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("a", "link") and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag in ("main", "header", "footer", "nav"):
            self.landmarks.add(tag)
        if tag == "html":
            self.lang = a.get("lang") or ""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("site")
    files = build_site(sample_snapshot(), out, NOW)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(files)
    return files


def text(files: dict[str, bytes], path: str) -> str:
    return files[path].decode()


def test_index_shows_overall_state_components_by_group_and_statuses(site: dict[str, bytes]) -> None:
    html = text(site, "index.html")
    assert "Major System Outage" in html  # worst: imap major_outage + critical incident
    assert 'class="overall s-critical"' in html
    groups = re.findall(r"<h3>(Mail|Web)</h3>", html)
    assert groups == ["Mail", "Web"]
    # status in words next to every component (colour is never the only signal)
    for comp, words in [
        ("imap", "Major outage"),
        ("smtp", "Operational"),
        ("webmail", "Under maintenance"),
        ("api", "Degraded performance"),
    ]:
        block = html.split(f'id="c-{comp}"', 1)[1].split("</li>", 1)[0]
        assert words in block, comp
    assert "Reading mail" in html  # description


def test_index_shows_open_incident_timeline_and_maintenance(site: dict[str, bytes]) -> None:
    html = text(site, "index.html")
    incidents = html.split('id="h-incidents"', 1)[1].split("</section>", 1)[0]
    assert "IMAP outage" in incidents and 'href="incidents/inc2.html"' in incidents
    assert incidents.index("A storage node failed.") < incidents.index(
        "IMAP is down for everyone."
    )  # newest first
    assert "IMAP logins slow" not in incidents  # resolved: history only
    maint = html.split('id="h-maint"', 1)[1].split("</section>", 1)[0]
    assert "Webmail upgrade" in maint and "In progress" in maint
    assert "SMTP relay move" in maint and "Planned" in maint
    assert maint.index("Webmail upgrade") < maint.index("SMTP relay move")  # by start time


def test_uptime_bars_show_worst_state_with_minutes_in_title(site: dict[str, bytes]) -> None:
    html = text(site, "index.html")
    imap = html.split('id="c-imap"', 1)[1].split("</li>", 1)[0]
    assert '<i class=p title="2026-11-14: Partial outage 45 min">' in imap
    assert '<i class=x title="2026-11-24: Major outage 60 min">' in imap
    flex = sum(int(n) if n else 1 for n in re.findall(r"<i(?: class=(?:[mdpx]|w(\d+)))?[ >]", imap))
    assert flex == 90
    # widths come from the stylesheet: the page's CSP (style-src 'self') would drop a style attribute
    assert "style=" not in html
    css = site["static/style.css"].decode()
    assert all(f".bars .w{n}{{flex:{n}}}" in css for n in re.findall(r"<i class=w(\d+)>", html))
    assert 'role="img" aria-label="IMAP: ' in imap and "2 day(s) with problems" in imap


def test_last_updated_is_visible_without_script_and_stale_warning_is_scripted(site: dict[str, bytes]) -> None:
    html = text(site, "index.html")
    assert '<time id="updated" datetime="2026-11-24T12:00:00Z">2026-11-24 12:00 UTC</time>' in html
    assert re.search(r'id="stale"[^>]*hidden', html)
    assert "900000" in html  # 15 minutes in ms, from page.stale_after_minutes


def test_german_pages_and_language_switch(site: dict[str, bytes]) -> None:
    de = text(site, "de/index.html")
    assert '<html lang="de">' in de
    assert "Schwerer Ausfall" in de and "Komponenten" in de and "DE: A storage node failed." in de
    assert 'href="../index.html" hreflang="en"' in de
    assert 'href="de/index.html" hreflang="de"' in text(site, "index.html")
    assert 'href="../../incidents/inc2.html" hreflang="en"' in text(site, "de/incidents/inc2.html")


def test_every_local_link_resolves_and_pages_have_landmarks(site: dict[str, bytes]) -> None:
    for path, data in site.items():
        if not path.endswith(".html"):
            continue
        parser = Links()
        parser.feed(data.decode())
        assert {"main", "header", "footer", "nav"} <= parser.landmarks, path
        assert parser.lang in ("en", "de")
        for href in parser.hrefs:
            if href.startswith(("http://", "https://", "#")):
                continue
            target = (Path(path).parent / href).as_posix()
            normal = re.sub(r"[^/]+/\.\./", "", target)
            while "/../" in normal or normal.startswith("./"):
                normal = re.sub(r"[^/]+/\.\./", "", normal).removeprefix("./")
            assert normal in site, f"{path} links to {href} ({normal}) which is not in the site"


def test_incident_pages_and_history(site: dict[str, bytes]) -> None:
    page = text(site, "incidents/inc1.html")
    assert "IMAP logins slow" in page and "Logins are slow." in page and "Resolved" in page
    assert "https://status.example.com/incidents/inc1.html" in page  # the permanent URL
    maint = text(site, "incidents/mnt2.html")
    assert "2026-11-26 12:00 UTC" in maint and "2026-11-26 14:00 UTC" in maint
    history = text(site, "history.html")
    for name in ("IMAP outage", "IMAP logins slow", "Webmail upgrade", "SMTP relay move"):
        assert name in history
    assert history.index("2026-11") < history.index("IMAP logins slow")


def test_user_text_is_escaped_everywhere() -> None:
    files = render_site(sample_snapshot(evil=True), NOW)
    for path, data in files.items():
        if path.endswith(".json"):
            continue  # JSON carries the text as data; consumers escape it
        body = data.decode()
        assert "<script>window.pwned" not in body, path
        assert "<img src=x" not in body, path
    html = files["index.html"].decode()
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in html
    assert EVIL in files["api/v2/summary.json"].decode().replace('\\"', '"')  # JSON keeps the text intact


def test_drafts_and_updates_for_other_channels_stay_off_the_page() -> None:
    inc = Incident(id="inc9", name="Draft only", status="investigating", impact=Impact.MINOR, created_at=NOW)
    inc.updates = [update("inc9", 1, "investigating", "secret draft", NOW, draft=True)]
    assert public_incident(inc) is None
    inc.updates[0].approved_by = "alice"
    assert public_incident(inc) is inc
    inc.updates.append(update("inc9", 2, "identified", "only for X", NOW, channels=["x"]))
    assert [u.number for u in public_incident(inc, channel="page").updates] == [1]  # type: ignore[union-attr]
    assert [u.number for u in public_incident(inc, channel="x").updates] == [1, 2]  # type: ignore[union-attr]


def test_incremental_render_reuses_unchanged_incident_pages_and_matches_a_full_render() -> None:
    snap = sample_snapshot()
    cache = RenderCache()
    render_site(snap, NOW, cache)
    assert cache.misses == 8 and cache.hits == 0  # 4 incidents x 2 languages
    later = NOW + timedelta(minutes=5)
    snap.incidents[0].updates.append(update("inc2", 3, "monitoring", "Replacement node is in.", later))
    snap.incidents[0].status = "monitoring"
    again = render_site(snap, later, cache)
    assert cache.misses == 8 + 2 and cache.hits == 6
    assert again == render_site(snap, later)  # the cache never changes the output
    assert "Replacement node is in." in again["incidents/inc2.html"].decode()


def test_the_cache_forgets_the_pages_and_rows_of_deleted_incidents() -> None:
    """Review N2: a long-running worker's RenderCache must not keep every incident it ever rendered."""
    snap = sample_snapshot()
    cache = RenderCache()
    render_site(snap, NOW, cache)
    gone = snap.incidents.pop(0)
    snap.incidents.append(dataclasses.replace(snap.incidents[0], id="new1", updates=[]))  # one deleted, one added
    later = NOW + timedelta(minutes=1)
    again = render_site(snap, later, cache)
    assert not [p for p in cache.pages if gone.id in p]
    assert not [k for k in cache.rows if k[1] == gone.id]
    assert len(cache.pages) == len(cache.rows) == 2 * len(snap.incidents)
    assert again == render_site(snap, later)
    assert render_site(snap, later, cache) == again


def test_index_with_50_components_stays_under_100_kb() -> None:
    """50 components, each with a problem every 6th day (15 problem days in 90)."""
    base = sample_snapshot()
    comps = [
        ComponentSettings(id=f"c{i}", name=f"Component {i}", group=f"Group {i // 10}") for i in range(50)
    ]
    history = {
        c.id: [
            change
            for d in range(89, -1, -6)
            for change in (
                ComponentChange(c.id, ComponentStatus.PARTIAL_OUTAGE, NOW - timedelta(days=d, hours=3)),
                ComponentChange(c.id, ComponentStatus.OPERATIONAL, NOW - timedelta(days=d, hours=2)),
            )
        ]
        for c in comps
    }
    snap = Snapshot(page=base.page, components=comps, statuses={}, history=history, incidents=base.incidents)
    files = render_site(snap, NOW)
    size = len(files["index.html"]) + len(files["static/style.css"])
    assert size < 100 * 1024, size
    assert files["index.html"].decode().count("<i class=p ") == 50 * 15


def test_an_empty_page_renders_all_operational_with_empty_lists() -> None:
    base = sample_snapshot()
    snap = Snapshot(page=base.page, components=[], statuses={}, history={}, incidents=[])
    files = render_site(snap, NOW)
    html = files["index.html"].decode()
    assert "All Systems Operational" in html and "No open incidents." in html
    assert 'id="h-maint"' not in html
    assert "No incidents reported." in files["history.html"].decode()
    assert "Keine Störungen gemeldet." in files["de/history.html"].decode()
    assert not [p for p in files if p.startswith("incidents/")]


def test_a_warm_cache_renders_exactly_what_a_cold_render_does_through_a_day_of_changes() -> None:
    """Every reused piece (incident pages, history rows, bars and their markup) against a render without a cache."""
    snap = sample_snapshot()
    cache = RenderCache()
    render_site(snap, NOW, cache)
    comp = snap.components[1].id
    steps = [
        (timedelta(minutes=1), lambda: None),  # nothing changed but the time
        (timedelta(minutes=2), lambda: snap.history.setdefault(comp, []).append(
            ComponentChange(comp, ComponentStatus.PARTIAL_OUTAGE, NOW + timedelta(minutes=2)))),
        (timedelta(minutes=40), lambda: None),  # still down: the outage grows
        (timedelta(minutes=50), lambda: snap.history[comp].append(
            ComponentChange(comp, ComponentStatus.OPERATIONAL, NOW + timedelta(minutes=50)))),
        (timedelta(hours=3), lambda: snap.incidents[1].names.update(de="Umbenannt")),
        (timedelta(hours=4), lambda: setattr(snap.incidents[2], "status", "resolved")),
        (timedelta(days=1, hours=1), lambda: None),  # the next day: the bars move on by one
        (timedelta(days=1, hours=2), lambda: setattr(snap.page, "name", "Renamed Page")),
    ]
    for offset, change in steps:
        change()
        at = NOW + offset
        warm = render_site(snap, at, cache)
        cold = render_site(snap, at)
        assert warm.keys() == cold.keys()
        assert [p for p in warm if warm[p] != cold[p]] == [], offset
    assert "Umbenannt" in render_site(snap, NOW + timedelta(days=1, hours=2), cache)["de/history.html"].decode()


def test_incident_pages_filled_into_the_shared_chrome_escape_the_id_and_title_and_keep_their_depth() -> None:
    """Incident pages are rendered once per language around placeholders; odd ids and titles still come out right."""
    snap = sample_snapshot()
    odd = Incident(id='i&"<1', name=EVIL, status="resolved", impact=Impact.MINOR, created_at=NOW - timedelta(hours=1),
                   updates=[update('i&"<1', 1, "resolved", "done \x00 nul", NOW - timedelta(hours=1))])
    deep = Incident(id="a/b", name="Deep \x00 one", status="resolved", impact=Impact.MINOR,
                    created_at=NOW - timedelta(hours=2), updates=[update("a/b", 1, "resolved", "x", NOW)])
    snap.incidents.extend([odd, deep])
    files = render_site(snap, NOW)
    page = files['de/incidents/i&"<1.html'].decode()
    assert '<a href="../../incidents/i&amp;&#34;&lt;1.html" hreflang="en" lang="en">' in page
    assert "<title>&lt;script&gt;window.pwned=1&lt;/script&gt;" in page and "<script>window" not in page
    assert "done \x00 nul" in page and page.count("<main") == 1 and page.endswith("</html>")
    deep_page = files["incidents/a/b.html"].decode()  # one level deeper: ../../ to the root, id hole not used
    assert 'href="../../static/style.css"' in deep_page and "Deep \x00 one" in deep_page
    assert files["incidents/inc2.html"].decode().count("\x00") == 0


def test_builds_sharing_a_cache_run_one_at_a_time() -> None:
    """The cache's keys do not carry the settings' fingerprint: a build that began under older settings
    must not store entries while another build (a worker thread, the heartbeat republish) is under way."""
    import threading

    cache = RenderCache()
    done = threading.Event()
    with cache.lock:  # another build holds the cache
        thread = threading.Thread(target=lambda: (render_site(sample_snapshot(), NOW, cache), done.set()))
        thread.start()
        # a render of this snapshot takes milliseconds: unfinished after 0.5 s means it waits its turn
        assert not done.wait(0.5), "a second build ran while the cache was held"
        assert cache.misses == 0
    assert done.wait(30)
    thread.join()
    assert cache.misses == 8
