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

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from notifier.domain.model import ComponentStatus, Incident, to_iso
from notifier.statuspage import feeds
from notifier.statuspage.i18n import label, strings
from notifier.statuspage.json_api import ACTIVE_MAINTENANCE, JsonApi, page_indicator
from notifier.statuspage.snapshot import Snapshot
from notifier.statuspage.sparkline import sparkline
from notifier.statuspage.uptime import Bars, compute_bars

HERE = Path(__file__).parent
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
    """Rendered incident pages by path, with the hash of what they were rendered from."""

    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


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

    # ---- pages ----------------------------------------------------------------------------------
    def index(self, lang: _Lang, bars: dict[str, Bars]) -> bytes:
        indicator, maintenance = page_indicator(self.snap)
        key = {"none": "ok"}.get(indicator, indicator)
        description = lang.t["maint_desc"] if indicator == "none" and maintenance else lang.t[key]
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for comp in self.snap.components:
            status = self.snap.status_of(comp.id)
            groups.setdefault(comp.group, []).append({"c": comp, "status": status, "bars": bars[comp.id],
                                                      "spark": self.spark(comp.id, lang)})
        incidents = sorted(
            (i for i in self.snap.incidents if i.kind == "incident" and i.is_open),
            key=lambda i: i.created_at,
            reverse=True,
        )
        maint = sorted(
            (i for i in self.snap.incidents if i.kind == "maintenance" and i.is_open),
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
                "short": BAR_CLASS,
                "ok": ComponentStatus.OPERATIONAL,
            },
        )

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
        return self._render(
            "incident.html",
            lang,
            f"incidents/{inc.id}.html",
            {"inc": inc, "text": lambda u: self.text(u, lang)},
        )

    def history(self, lang: _Lang) -> bytes:
        # Rows are formatted here, not in a Jinja loop: 1,000 incidents x 2 languages is the bulk of
        # a rebuild otherwise. Everything user-written goes through escape().
        items = sorted(self.snap.incidents, key=lambda i: i.created_at, reverse=True)
        months: dict[str, list[Markup]] = {}
        home = _root(lang.prefix + "history.html") + lang.prefix
        for inc in items:
            row = Markup(
                '<li><a href="{}incidents/{}.html">{}</a> <span class="meta">{} · '
                '<time datetime="{}">{}</time></span></li>'
            ).format(
                home, inc.id, inc.title(lang.code), label(lang.code, inc.status), to_iso(inc.created_at),
                self.when(inc.created_at),
            )
            months.setdefault(inc.created_at.astimezone(self.tz).strftime("%Y-%m"), []).append(row)
        return self._render("history.html", lang, "history.html", {"months": list(months.items())})

    def _render(self, template: str, lang: _Lang, path: str, extra: dict[str, Any]) -> bytes:
        return _env.get_template(template).render(**self.common(lang, path), **extra).encode()

    def incident_hash(self, inc: Incident) -> str:
        """Everything an incident page is rendered from. Built by hand: dataclasses.asdict is 10x slower."""
        updates = tuple((u.id, u.status, u.created_at.timestamp(), tuple(sorted(u.body.items()))) for u in inc.updates)
        raw = repr(
            (
                self.fingerprint,
                inc.id,
                inc.name,
                inc.status,
                inc.impact.value,
                inc.kind,
                tuple(inc.components),
                inc.created_at.timestamp(),
                _ts(inc.resolved_at),
                _ts(inc.scheduled_for),
                _ts(inc.scheduled_until),
                updates,
            )
        )
        return hashlib.sha256(raw.encode()).hexdigest()


def _probe_days(snap: Snapshot, component_id: str) -> dict[date, tuple[int, int]] | None:
    results = snap.probe_results.get(component_id)
    if results is None:
        return None
    return {day: (entry.runs, entry.failed) for day, entry in results.days.items()}


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def static_files() -> dict[str, bytes]:
    return {f"static/{p.name}": p.read_bytes() for p in sorted(STATIC_DIR.iterdir()) if p.is_file()}


def render_site(snap: Snapshot, now: datetime, cache: RenderCache | None = None) -> dict[str, bytes]:
    """Every file of the site as {relative path: bytes}; pure apart from reading the packaged assets."""
    r = _Renderer(snap, now)
    bars = {c.id: compute_bars(snap.history.get(c.id, []), now, r.tz, probe_days=_probe_days(snap, c.id))
            for c in snap.components}
    files: dict[str, bytes] = static_files()
    digests = {inc.id: r.incident_hash(inc) for inc in snap.incidents} if cache is not None else {}
    for lang in r.langs:
        files[lang.prefix + "index.html"] = r.index(lang, bars)
        files[lang.prefix + "history.html"] = r.history(lang)
        for inc in snap.incidents:
            path = f"{lang.prefix}incidents/{inc.id}.html"
            if cache is None:
                files[path] = r.incident(lang, inc)
                continue
            digest = digests[inc.id]  # the path carries the language
            cached = cache.pages.get(path)
            if cached and cached[0] == digest:
                cache.hits += 1
                files[path] = cached[1]
            else:
                cache.misses += 1
                files[path] = r.incident(lang, inc)
                cache.pages[path] = (digest, files[path])
    files.update(JsonApi(snap, now).files())
    files["history.atom"] = feeds.atom(snap, now)
    files["history.rss"] = feeds.rss(snap, now)
    return files


def write_files(files: dict[str, bytes], out_dir: str | os.PathLike[str]) -> None:
    out = Path(out_dir)
    made: set[Path] = set()
    for rel, data in files.items():
        target = out / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(data)


def build_site(
    snap: Snapshot, out_dir: str | os.PathLike[str], now: datetime, cache: RenderCache | None = None
) -> dict[str, bytes]:
    """Render the whole site into ``out_dir`` (created if missing); returns what was written."""
    files = render_site(snap, now, cache)
    write_files(files, out_dir)
    return files
