"""Issue 13: the status page names incidents and components in each of its languages, and never shows a
hidden (internal) component."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from notifier.config import ComponentSettings
from notifier.statuspage.generator import build_site
from notifier.statuspage.snapshot import load_snapshot
from tests.fakes.statuspage_model import NOW, sample_snapshot


def test_names_per_language_on_every_page(tmp_path: Path) -> None:
    base = sample_snapshot()
    snap = replace(base, components=[c.model_copy(update={"names": {"de": "Schnittstelle"}}) if c.id == "api" else c
                                     for c in base.components])
    inc = next(i for i in snap.incidents if i.kind == "incident")
    inc.names = {"en": inc.name, "de": "Störung beim Lesen von Mail"}
    files = build_site(snap, tmp_path, NOW)
    de, en = files["de/index.html"].decode(), files["index.html"].decode()
    assert "Schnittstelle" in de and ">API<" not in de
    assert ">API<" in en and "Schnittstelle" not in en
    page_de = files[f"de/incidents/{inc.id}.html"].decode()
    assert "Störung beim Lesen von Mail" in page_de and inc.name not in page_de
    assert inc.name in files[f"incidents/{inc.id}.html"].decode()


class _Store:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def component_statuses(self, ids: list[str]) -> dict[str, object]:
        self.asked = list(ids)
        return {}

    def component_history(self, cid: str, since: object) -> list[object]:
        return []

    def list_incidents(self) -> list[object]:
        return []


def test_hidden_components_never_reach_the_page() -> None:
    store = _Store()
    comps = [ComponentSettings(id="imap", name="IMAP"),
             ComponentSettings(id="storage", name="Storage", hidden=True, affects={"imap": "major_outage"})]
    snap = load_snapshot(store, sample_snapshot().page, comps, NOW)
    assert [c.id for c in snap.components] == ["imap"] and store.asked == ["imap"]
