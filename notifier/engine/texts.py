"""The words of automatic updates, in every page language we ship (en, de).

Every function returns one text per language in ``LANGS``; component names come from a ``Names``
(a configured name per language, the default name as fallback), so a German post holds no English
word the engine wrote. Hidden components never reach these functions (the core filters them).
"""

from __future__ import annotations

LANGS = ("en", "de")

_STATUS = {
    "en": {
        "operational": "operational",
        "degraded_performance": "degraded performance",
        "partial_outage": "partial outage",
        "major_outage": "major outage",
        "under_maintenance": "under maintenance",
    },
    "de": {
        "operational": "in Betrieb",
        "degraded_performance": "eingeschränkte Leistung",
        "partial_outage": "teilweiser Ausfall",
        "major_outage": "schwerer Ausfall",
        "under_maintenance": "in Wartung",
    },
}


class Names:
    """Component names per language: ``names("imap", "de")``."""

    def __init__(self, default: dict[str, str], per_language: dict[str, dict[str, str]] | None = None) -> None:
        self.default = default
        self.per_language = per_language or {}

    def __call__(self, comp: str, lang: str) -> str:
        return self.per_language.get(comp, {}).get(lang) or self.default.get(comp, comp)


def status_word(status: str, lang: str) -> str:
    return _STATUS[lang].get(status, status)


def _list(names: list[str], lang: str) -> str:
    if len(names) <= 1:
        return "".join(names)
    joiner = " and " if lang == "en" else " und "
    return ", ".join(names[:-1]) + joiner + names[-1]


def _named(components: list[str], names: Names, lang: str) -> list[str]:
    return sorted((names(c, lang) for c in components), key=str.casefold)


def _states(components: dict[str, str], names: Names, lang: str) -> str:
    pairs = sorted(((names(c, lang), s) for c, s in components.items()), key=lambda p: p[0].casefold())
    return _list([f"{n} ({status_word(s, lang)})" for n, s in pairs], lang)


def title(components: list[str], names: Names) -> dict[str, str]:
    """The incident's name, one per language."""
    return {
        "en": "Problems with " + _list(_named(components, names, "en"), "en"),
        "de": "Störung bei " + _list(_named(components, names, "de"), "de"),
    }


def opening(components: dict[str, str], names: Names) -> dict[str, str]:
    return {
        "en": f"We are investigating problems with {_states(components, names, 'en')}.",
        "de": f"Wir untersuchen Probleme mit {_states(components, names, 'de')}.",
    }


def change(components: dict[str, str], names: Names, recovered: list[str] | None = None) -> dict[str, str]:
    """A new state while alerts still fire: what is affected now, and what works again."""
    back = sorted(recovered or [])
    en = f"We are still investigating. Affected now: {_states(components, names, 'en')}."
    de = f"Wir untersuchen weiter. Derzeit betroffen: {_states(components, names, 'de')}."
    if back:
        en += f" Working again: {_list(_named(back, names, 'en'), 'en')}."
        de += f" Wieder in Betrieb: {_list(_named(back, names, 'de'), 'de')}."
    return {"en": en, "de": de}


def monitoring(components: list[str], names: Names) -> dict[str, str]:
    """Every alert cleared: recovering, but not yet declared over."""
    return {
        "en": f"{_list(_named(components, names, 'en'), 'en')}: recovering. We are watching closely before "
        "we call it resolved.",
        "de": f"{_list(_named(components, names, 'de'), 'de')}: wieder erreichbar. Wir beobachten die Lage genau, "
        "bevor wir Entwarnung geben.",
    }


def intermittent(components: list[str], names: Names) -> dict[str, str]:
    return {
        "en": f"{_list(_named(components, names, 'en'), 'en')}: intermittent problems. We are monitoring and "
        "will post again once the service is stable.",
        "de": f"{_list(_named(components, names, 'de'), 'de')}: zeitweise Störungen. Wir beobachten die Lage "
        "und melden uns, sobald der Dienst stabil ist.",
    }


def resolved(components: list[str], names: Names) -> dict[str, str]:
    return {
        "en": f"The problems with {_list(_named(components, names, 'en'), 'en')} are resolved.",
        "de": f"Die Probleme mit {_list(_named(components, names, 'de'), 'de')} sind behoben.",
    }


def merged(into_id: str, into_title: dict[str, str]) -> dict[str, str]:
    """The closing update of an incident a person merged into another."""
    return {
        "en": f"This incident continues as {into_title.get('en', into_id)} ({into_id}); we post updates there.",
        "de": f"Diese Störung wird unter {into_title.get('de') or into_title.get('en', into_id)} ({into_id}) "
        "weitergeführt; dort informieren wir weiter.",
    }


def maintenance(name: str, phase: str) -> dict[str, str]:
    en = {
        "before": "Reminder: scheduled maintenance starts soon",
        "start": "Maintenance has started",
        "end": "Maintenance is complete",
        "cancelled": "This maintenance was cancelled",
    }[phase]
    de = {
        "before": "Erinnerung: geplante Wartung beginnt in Kürze",
        "start": "Die Wartung hat begonnen",
        "end": "Die Wartung ist abgeschlossen",
        "cancelled": "Diese Wartung wurde abgesagt",
    }[phase]
    return {"en": f"{en}: {name}.", "de": f"{de}: {name}."}
