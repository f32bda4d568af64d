"""The words of automatic updates, in every page language we ship (en, de)."""

from __future__ import annotations

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


def _list(names: list[str], lang: str) -> str:
    if len(names) <= 1:
        return "".join(names)
    joiner = " and " if lang == "en" else " und "
    return ", ".join(names[:-1]) + joiner + names[-1]


def _states(components: dict[str, str], names: dict[str, str], lang: str) -> str:
    return "; ".join(f"{names.get(c, c)}: {_STATUS[lang].get(s, s)}" for c, s in sorted(components.items()))


def title(components: list[str], names: dict[str, str]) -> str:
    return "Problems with " + _list([names.get(c, c) for c in components], "en")


def opening(components: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    def states(lang: str) -> str:
        parts = [f"{names.get(c, c)} ({_STATUS[lang].get(s, s)})" for c, s in sorted(components.items())]
        return _list(parts, lang)

    return {
        "en": f"We are investigating problems with {states('en')}.",
        "de": f"Wir untersuchen Probleme mit {states('de')}.",
    }


def change(components: dict[str, str], names: dict[str, str]) -> dict[str, str]:
    return {
        "en": f"Update: we are still working on it. Current state: {_states(components, names, 'en')}.",
        "de": f"Update: wir arbeiten weiter daran. Aktueller Stand: {_states(components, names, 'de')}.",
    }


def intermittent(components: list[str], names: dict[str, str]) -> dict[str, str]:
    comps = [names.get(c, c) for c in sorted(components)]
    return {
        "en": f"{_list(comps, 'en')}: intermittent problems. We are monitoring and will post again once "
        "the service is stable.",
        "de": f"{_list(comps, 'de')}: zeitweise Störungen. Wir beobachten die Lage und melden uns, sobald "
        "der Dienst stabil ist.",
    }


def resolved(components: list[str], names: dict[str, str]) -> dict[str, str]:
    comps = [names.get(c, c) for c in sorted(components)]
    return {
        "en": f"The problems with {_list(comps, 'en')} are resolved.",
        "de": f"Die Probleme mit {_list(comps, 'de')} sind behoben.",
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
