"""The static site generator: a Snapshot in, every file of the status page out.

``render_site`` is pure (snapshot + time -> {relative path: bytes}); ``build_site`` also writes the
files into a directory. Incident pages depend only on their incident and the page settings, so a
``RenderCache`` keyed by a content hash lets a rebuild after one update re-render only that page
plus the index, history, JSON and feeds.

Layout: the default language at the root (``index.html``, ``incidents/<id>.html``,
``history.html``), every other language under ``<lang>/``; ``static/``, ``api/v2/``,
``history.atom`` and ``history.rss`` are shared.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from notifier.domain.model import ComponentStatus, Incident, to_iso
from notifier.statuspage import feeds
from notifier.statuspage.i18n import label, strings
from notifier.statuspage.json_api import ACTIVE_MAINTENANCE, JsonApi, page_indicator
from notifier.statuspage.snapshot import Snapshot
from notifier.statuspage.sparkline import sparkline
from notifier.statuspage.uptime import Bars, Run, compute_bars, with_uptime

HERE = Path(__file__).parent
_HOLE = "\x00"  # marks the placeholders in an incident page's chrome; never in escaped text we insert
STATIC_DIR = HERE / "static"
TEMPLATE_VERSION = "2"
# One-letter classes keep 50 components x 90 days of bars small (see static/style.css)
BAR_CLASS = {
    ComponentStatus.OPERATIONAL: "o",
    ComponentStatus.UNDER_MAINTENANCE: "m",
    ComponentStatus.DEGRADED_PERFORMANCE: "d",
    ComponentStatus.PARTIAL_OUTAGE: "p",
    ComponentStatus.MAJOR_OUTAGE: "x",
}  # bump when templates change so cached incident pages are re-rendered

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,  # user text (names, bodies) must never become markup
    auto_reload=False,  # packaged templates do not change under a running process; saves a stat per page
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class RenderCache:
    """Rendered pieces of the site (incident pages, history rows, component bars), each with the inputs
    it was rendered from, kept by the caller between builds."""

    pages: dict[str, tuple[tuple[Any, ...], bytes]] = field(default_factory=dict)
    # history rows by (language prefix, incident id): (what the row shows, its month, the row's markup)
    rows: dict[tuple[str, str], tuple[tuple[Any, ...], str, str]] = field(default_factory=dict)
    # per component: (what its bars are computed from, the now-independent part of its Bars)
    bars: dict[str, tuple[tuple[Any, ...], Bars]] = field(default_factory=dict)
    # a component's bar markup by (language prefix, component id): (the Bars.runs it shows, markup)
    bar_html: dict[tuple[str, str], tuple[list[Run], Markup]] = field(default_factory=dict)
    fingerprint: str = ""  # page settings + template version the entries above were rendered with
    hits: int = 0
    misses: int = 0
    # one build at a time per cache: the keys above do not carry the fingerprint, so a build that began
    # under older settings must not store its entries after another build has moved the fingerprint on
    # (a worker's threads and the heartbeat republish share the channel's cache)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


@dataclass
class _Lang:
    code: str
    prefix: str  # "" for the default language, "de/" otherwise
    t: dict[str, str]


def _languages(snap: Snapshot) -> list[_Lang]:
    codes = list(dict.fromkeys([snap.page.language, *snap.page.languages]))
    return [_Lang(c, "" if c == snap.page.language else f"{c}/", strings(c)) for c in codes]


def _root(path: str) -> str:
    return "../" * path.count("/")


class _Renderer:
    def __init__(self, snap: Snapshot, now: datetime) -> None:
        self.snap = snap
        self.now = now
        try:
            self.tz: Any = ZoneInfo(snap.page.time_zone)
        except (KeyError, ValueError):
            self.tz = ZoneInfo("UTC")
        self.langs = _languages(snap)
        self.names = {c.id: c.name for c in snap.components}
        self.indicator = page_indicator(snap)  # once: the index in every language and status.json show it
        self.open = [i for i in snap.incidents if i.is_open]
        self._chrome: dict[str, list[str]] = {}  # incident page around its main part, by language
        self._status_html: dict[tuple[str, str], str] = {}  # an update status's escaped label, by language
        self.form_origin = snap.page.subscribe_origin() or "'none'"  # the CSP's form-action, on every page
        self.fingerprint = json.dumps([TEMPLATE_VERSION, snap.page.model_dump(mode="json"), self.names], sort_keys=True)

    # ---- helpers exposed to templates -----------------------------------------------------------
    def when(self, value: datetime | None) -> str:
        if value is None:
            return ""
        local = value.astimezone(self.tz)
        return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or self.snap.page.time_zone)

    def common(self, lang: _Lang, path: str) -> dict[str, Any]:
        """Variables every template gets; ``path`` is the page's path without the language prefix."""
        full = lang.prefix + path
        root = _root(full)
        return {
            "page": self.snap.page,
            "form_origin": self.form_origin,
            "lang": lang.code,
            "t": lang.t,
            "root": root,
            "home": root + lang.prefix,
            "label": lambda v: label(lang.code, str(v)),
            "when": self.when,
            "iso": to_iso,
            "names": self.names,
            "switch": [
                (other.code, other.t["lang_name"], root + other.prefix + path, other.code == lang.code)
                for other in self.langs
            ],
        }

    def text(self, update: Any, lang: _Lang) -> str:
        return str(update.text(lang.code, self.snap.page.language))

    def affected(self, lang: _Lang, inc: Incident, skip_blank: bool = False) -> Markup:
        """" · Affected: A, B" after an incident's status, on the index and on its page (empty without
        components; with ``skip_blank``, as incident pages have it, also when the names print as nothing).
        Formatted here, not in a template macro: a macro call costs more than the markup (2,000 pages)."""
        names = ", ".join(escape(self.names.get(c, c)) for c in inc.components)
        if not inc.components or (skip_blank and not names):
            return Markup()
        return Markup(f" · {escape(lang.t['affected'])}: {names}")  # noqa: S704 - every value went through escape()

    def timeline(self, lang: _Lang, inc: Incident) -> Markup:
        """An incident's updates, newest first, as on the index and on its page."""
        items = []
        for u in reversed(inc.updates):
            status = self._status_html.get((lang.code, u.status))
            if status is None:
                status = self._status_html[(lang.code, u.status)] = str(escape(label(lang.code, str(u.status))))
            # an ISO time is digits, "-", ":", "T" and "+": nothing to escape
            items.append(
                f'<li><strong>{status}</strong> <time datetime="{to_iso(u.created_at)}">'
                f'{escape(self.when(u.created_at))}</time>\n<p class="body">{escape(self.text(u, lang))}</p></li>\n'
            )
        return Markup(f'<ol class="timeline">\n{"".join(items)}</ol>')  # noqa: S704 - every value went through escape()

    # ---- pages ----------------------------------------------------------------------------------
    def index(self, lang: _Lang, bars: dict[str, Bars], cache: RenderCache | None = None) -> bytes:
        indicator, maintenance = self.indicator
        key = {"none": "ok"}.get(indicator, indicator)
        description = lang.t["maint_desc"] if indicator == "none" and maintenance else lang.t[key]
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for comp in self.snap.components:
            status = self.snap.status_of(comp.id)
            groups.setdefault(comp.group, []).append({"c": comp, "status": status, "bars": bars[comp.id],
                                                      "runs": self.runs(lang, comp.id, bars[comp.id], cache),
                                                      "spark": self.spark(comp.id, lang)})
        incidents = sorted(
            (i for i in self.open if i.kind == "incident"),
            key=lambda i: i.created_at,
            reverse=True,
        )
        maint = sorted(
            (i for i in self.open if i.kind == "maintenance"),
            key=lambda i: i.scheduled_for or i.created_at,
        )
        recent = self.now.timestamp() - 7 * 86400
        notices = [i for i in self.snap.incidents if i.kind == "broadcast" and i.created_at.timestamp() > recent]
        return self._render(
            "index.html",
            lang,
            "index.html",
            {
                "indicator": indicator,
                "maintenance": maintenance,
                "description": description,
                "groups": list(groups.items()),
                "incidents": incidents,
                "maint": maint,
                "active_states": ACTIVE_MAINTENANCE,
                "notices": notices,
                "now": self.now,
                "stale_ms": int(self.snap.page.stale_after_minutes * 60000),
                "text": lambda u: self.text(u, lang),
                "affected": lambda inc: self.affected(lang, inc),
                "timeline": lambda inc: self.timeline(lang, inc),
                "short": BAR_CLASS,
                "ok": ComponentStatus.OPERATIONAL,
            },
        )

    def runs(self, lang: _Lang, component_id: str, bars: Bars, cache: RenderCache | None) -> Markup:
        """The ``<i>`` elements of a component's bars. Formatted here, not in a Jinja loop (50 components
        x up to 90 runs x 2 languages); reused while the Bars' runs are the very list shown last time."""
        cached = cache.bar_html.get((lang.prefix, component_id)) if cache is not None else None
        if cached is not None and cached[0] is bars.runs:
            return cached[1]
        parts = []
        minute = escape(lang.t["min"])
        for run in bars.runs:
            if run.worst == ComponentStatus.OPERATIONAL and not run.probe_failed:
                parts.append(f"<i class=w{run.length}></i>" if run.length > 1 else "<i></i>")
                continue
            short = escape(BAR_CLASS[run.worst])
            title = ", ".join(f"{escape(label(lang.code, str(st)))} {m} {minute}" for st, m in run.minutes.items())
            if run.probe_failed:
                failed = lang.t["probe_failed"].format(failed=run.probe_failed, runs=run.probe_runs)
                title += ("; " if run.minutes else "") + escape(failed)
            cls = f'"{short} pf"' if run.probe_failed else short
            parts.append(f'<i class={cls} title="{escape(str(run.first))}: {title}"></i>')
        markup = Markup("".join(parts))  # noqa: S704 - every value in the parts went through escape()
        if cache is not None:
            cache.bar_html[(lang.prefix, component_id)] = (bars.runs, markup)
        return markup

    def spark(self, component_id: str, lang: _Lang) -> Markup | None:
        """The component's response-time sparkline, or None (no probe results, or none shown)."""
        results = self.snap.probe_results.get(component_id)
        if results is None or not results.recent_ms:
            return None
        values = results.recent_ms
        answered = [v for v in values if v is not None]
        failed = len(values) - len(answered)
        if answered:
            text = lang.t["spark_label"].format(n=len(values), mean=f"{sum(answered) / len(answered):.0f}",
                                                max=f"{max(answered):.0f}", failed=failed)
        else:
            text = lang.t["spark_none"].format(failed=failed)
        return sparkline(values, text)

    def incident(self, lang: _Lang, inc: Incident) -> bytes:
        code = lang.code
        scheduled = None
        if inc.kind == "maintenance" and inc.scheduled_for:
            until = inc.scheduled_until
            scheduled = (to_iso(inc.scheduled_for), self.when(inc.scheduled_for), to_iso(until), self.when(until))
        path = f"incidents/{inc.id}.html"
        extra = {
            "inc": inc,
            "title": inc.title(code),
            "status": label(code, str(inc.status)),
            "impact": label(code, str(inc.impact)),
            "affected": self.affected(lang, inc, skip_blank=True),
            "scheduled": scheduled,
            "timeline": self.timeline(lang, inc),
            "permalink": self.snap.page.incident_url(inc.id),
        }
        main = _env.get_template("incident_main.html").render(**self.common(lang, path), **extra) + "\n"
        if "/" in inc.id or _HOLE in inc.id:  # the page's depth or the placeholders would differ: no reuse
            return self._render("incident.html", lang, path, {**extra, "chrome": Markup(main)})  # noqa: S704
        # The page around the main part depends on the language and the incident's id and title only:
        # rendered once per language with placeholders, filled in here (HTML escaping is per character,
        # so escaping the id on its own gives what escaping the whole href gives).
        chrome = self._chrome.get(lang.code)
        if chrome is None:
            chrome = self._chrome[lang.code] = self._render(
                "incident.html",
                lang,
                f"incidents/{_HOLE}I{_HOLE}.html",
                {"title": f"{_HOLE}T{_HOLE}", "chrome": Markup(f"{_HOLE}M{_HOLE}")},  # noqa: S704 - a constant
            ).decode().split(_HOLE)
        values = {"I": str(escape(inc.id)), "T": str(escape(extra["title"])), "M": main}
        return "".join(piece if n % 2 == 0 else values[piece] for n, piece in enumerate(chrome)).encode()

    def history(
        self, lang: _Lang, rows: dict[tuple[str, str], tuple[tuple[Any, ...], str, str]] | None = None
    ) -> bytes:
        # Rows are formatted here, not in a Jinja loop: 1,000 incidents x 2 languages is the bulk of
        # a rebuild otherwise; with a RenderCache a row is formatted again only when what it shows
        # changed. Everything user-written goes through escape().
        items = sorted(self.snap.incidents, key=lambda i: i.created_at, reverse=True)
        months: dict[str, list[str]] = {}
        home = _root(lang.prefix + "history.html") + lang.prefix
        for inc in items:
            key = (inc.name, inc.names.get(lang.code), inc.status, inc.created_at)
            cached = rows.get((lang.prefix, inc.id)) if rows is not None else None
            if cached is not None and cached[0] == key:
                month, row = cached[1], cached[2]
            else:
                month = inc.created_at.astimezone(self.tz).strftime("%Y-%m")
                row = (
                    f'<li><a href="{escape(home)}incidents/{escape(inc.id)}.html">{escape(inc.title(lang.code))}</a> '
                    f'<span class="meta">{escape(label(lang.code, inc.status))} · '
                    f'<time datetime="{escape(to_iso(inc.created_at))}">{escape(self.when(inc.created_at))}</time>'
                    "</span></li>"
                )
                if rows is not None:
                    rows[(lang.prefix, inc.id)] = (key, month, row)
            months.setdefault(month, []).append(row)
        # every value in a row went through escape()
        joined = [(month, Markup("\n".join(group))) for month, group in months.items()]  # noqa: S704
        return self._render("history.html", lang, "history.html", {"months": joined})

    def _render(self, template: str, lang: _Lang, path: str, extra: dict[str, Any]) -> bytes:
        return _env.get_template(template).render(**self.common(lang, path), **extra).encode()

    @staticmethod
    def incident_key(inc: Incident) -> tuple[Any, ...]:
        """Everything an incident page is rendered from (with the renderer's fingerprint, kept once in
        the RenderCache). A tuple compared with ==: building it is the cost, so no hashing, no asdict."""
        return (
            inc.id,
            inc.name,
            tuple(inc.names.items()),
            inc.status,
            inc.impact,
            inc.kind,
            tuple(inc.components),
            inc.created_at,
            inc.resolved_at,
            inc.scheduled_for,
            inc.scheduled_until,
            tuple((u.id, u.status, u.created_at, tuple(u.body.items())) for u in inc.updates),
        )


def _probe_days(snap: Snapshot, component_id: str) -> dict[date, tuple[int, int]] | None:
    results = snap.probe_results.get(component_id)
    if results is None:
        return None
    return {day: (entry.runs, entry.failed) for day, entry in results.days.items()}


@functools.cache
def _static_files() -> tuple[tuple[str, bytes], ...]:
    # packaged assets do not change under a running process (like the templates: auto_reload=False)
    return tuple((f"static/{p.name}", p.read_bytes()) for p in sorted(STATIC_DIR.iterdir()) if p.is_file())


def static_files() -> dict[str, bytes]:
    return dict(_static_files())


def _bars(snap: Snapshot, r: _Renderer, now: datetime, cache: RenderCache | None) -> dict[str, Bars]:
    """Each component's 90-day bars; with a cache, recomputed only when an input changed."""
    out = {}
    today = now.astimezone(r.tz).date()
    for comp in snap.components:
        changes = snap.history.get(comp.id, [])
        probe_days = _probe_days(snap, comp.id)
        if cache is None:
            out[comp.id] = compute_bars(changes, now, r.tz, probe_days=probe_days)
            continue
        # Only the changes up to now count; while the component is operational, nothing but the
        # uptime percentage (re-derived below) depends on the exact time.
        upto = bisect.bisect_right(changes, now, key=lambda c: c.at)
        used = tuple(changes[:upto])
        current = used[-1].status if used else ComponentStatus.OPERATIONAL
        key = (today, used, tuple(sorted(probe_days.items())) if probe_days is not None else None)
        cached = cache.bars.get(comp.id)
        if current == ComponentStatus.OPERATIONAL and cached is not None and cached[0] == key:
            out[comp.id] = with_uptime(cached[1], now, r.tz)
            continue
        bars = compute_bars(changes, now, r.tz, probe_days=probe_days)
        if current == ComponentStatus.OPERATIONAL:
            cache.bars[comp.id] = (key, bars)
        out[comp.id] = bars
    return out


def render_site(snap: Snapshot, now: datetime, cache: RenderCache | None = None) -> dict[str, bytes]:
    """Every file of the site as {relative path: bytes}; pure apart from reading the packaged assets.

    With a ``cache`` (kept by the caller between builds), incident pages, history rows and component
    bars whose inputs did not change are reused, byte for byte, instead of rendered again.
    """
    if cache is None:
        return _render_site(snap, now, None)
    with cache.lock:
        return _render_site(snap, now, cache)


def _render_site(snap: Snapshot, now: datetime, cache: RenderCache | None) -> dict[str, bytes]:
    r = _Renderer(snap, now)
    if cache is not None and cache.fingerprint != r.fingerprint:
        cache.pages.clear()
        cache.rows.clear()
        cache.bars.clear()
        cache.bar_html.clear()
        cache.fingerprint = r.fingerprint
    bars = _bars(snap, r, now, cache)
    files: dict[str, bytes] = static_files()
    keys = {inc.id: r.incident_key(inc) for inc in snap.incidents} if cache is not None else {}
    for lang in r.langs:
        files[lang.prefix + "index.html"] = r.index(lang, bars, cache)
        files[lang.prefix + "history.html"] = r.history(lang, cache.rows if cache is not None else None)
        for inc in snap.incidents:
            path = f"{lang.prefix}incidents/{inc.id}.html"
            if cache is None:
                files[path] = r.incident(lang, inc)
                continue
            key = keys[inc.id]  # the path carries the language
            cached = cache.pages.get(path)
            if cached and cached[0] == key:
                cache.hits += 1
                files[path] = cached[1]
            else:
                cache.misses += 1
                files[path] = r.incident(lang, inc)
                cache.pages[path] = (key, files[path])
    if cache is not None:
        _forget_deleted(cache, r, snap)
    files.update(JsonApi(snap, now, r.indicator).files())
    entries = feeds.feed_entries(snap)
    files["history.atom"] = feeds.atom(snap, now, entries)
    files["history.rss"] = feeds.rss(snap, now, entries)
    return files


def _forget_deleted(cache: RenderCache, r: _Renderer, snap: Snapshot) -> None:
    """Drop the cached pages and history rows of incidents no longer in the snapshot (deleted, or gone
    from the page), so the cache holds what the site has, not everything it ever had. Every build stores
    each live page and row, so more entries than live ones means some are dead: a count, no set, on the
    usual build."""
    live = len(r.langs) * len(snap.incidents)
    if len(cache.pages) > live:
        paths = {f"{lang.prefix}incidents/{inc.id}.html" for lang in r.langs for inc in snap.incidents}
        for path in [p for p in cache.pages if p not in paths]:
            del cache.pages[path]
    if len(cache.rows) > live:
        keys = {(lang.prefix, inc.id) for lang in r.langs for inc in snap.incidents}
        for key in [k for k in cache.rows if k not in keys]:
            del cache.rows[key]


def write_files(
    files: dict[str, bytes],
    out_dir: str | os.PathLike[str],
    link_from: str | None = None,
    same: frozenset[str] = frozenset(),
    written: Callable[[int], None] | None = None,
) -> None:
    """Write ``files`` under ``out_dir``; the paths in ``same`` are hard-linked from ``link_from`` instead
    (falling back to a write if the link fails: pruned meanwhile, or another filesystem). With ``written``,
    the descriptor of each file written here (not of a linked one) is handed to ``written(fd)``, which
    closes it, instead of closed here: the directory target fsyncs them.

    Every file is opened relative to its directory's descriptor with ``os.open``: one ``openat``, one
    ``write``, one ``close`` per file, where ``open()`` adds an ``fstat``, an ``ioctl`` and ``lseek``s
    and the kernel walks the whole path each time (2,015 files a full build).
    """
    out = os.fspath(out_dir)
    dirs: dict[str, int] = {}
    sources: dict[str, int] = {}
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        for rel, data in files.items():
            parent, _, name = rel.rpartition("/")
            dfd = dirs.get(parent)
            if dfd is None:
                where = f"{out}/{parent}" if parent else out
                os.makedirs(where, exist_ok=True)
                dfd = dirs[parent] = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
            if rel in same and link_from is not None:
                sfd = sources.get(parent)
                try:
                    if sfd is None:
                        sfd = sources[parent] = os.open(
                            f"{link_from}/{parent}" if parent else link_from, os.O_RDONLY | os.O_DIRECTORY
                        )
                    os.link(name, name, src_dir_fd=sfd, dst_dir_fd=dfd)
                    continue
                except OSError:
                    pass  # write it instead
            fd = os.open(name, flags, 0o666, dir_fd=dfd)
            handed = False
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if written is not None:
                    handed = True  # it is written's to close from here on, even if it raises
                    written(fd)
            finally:
                if not handed:
                    os.close(fd)
    finally:
        for fd in (*dirs.values(), *sources.values()):
            os.close(fd)


def build_site(
    snap: Snapshot, out_dir: str | os.PathLike[str], now: datetime, cache: RenderCache | None = None
) -> dict[str, bytes]:
    """Render the whole site into ``out_dir`` (created if missing); returns what was written."""
    files = render_site(snap, now, cache)
    write_files(files, out_dir)
    return files
