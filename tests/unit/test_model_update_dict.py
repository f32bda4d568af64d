"""``IncidentUpdate.to_dict`` is written out field by field (issue 14: ``dataclasses.asdict`` deep-copied
every value); it must stay what ``asdict`` gave: every field, in order, and copies of the mutable ones."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from notifier.domain.model import IncidentUpdate, to_iso


@pytest.mark.parametrize("channels", [None, ["x", "hook"]])
def test_to_dict_is_asdict_with_an_iso_time_and_copies_its_mutable_fields(channels):
    upd = IncidentUpdate(id="inc4.2", incident_id="inc4", number=2, status="identified",
                         body={"en": "found it", "de": "gefunden"}, created_at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
                         author="pia", component_statuses={"smtp": "major_outage"}, channels=channels,
                         draft=True, approved_by="ed", op_id="abc")
    as_given = None if channels is None else list(channels)
    expected = dataclasses.asdict(upd) | {"created_at": to_iso(upd.created_at)}
    data = upd.to_dict()
    assert json.dumps(data) == json.dumps(expected)  # same keys, same order, same values
    data["body"]["en"] = data["component_statuses"]["smtp"] = "changed"
    if channels is not None:
        data["channels"].append("more")
    assert upd.body["en"] == "found it" and upd.component_statuses["smtp"] == "major_outage"
    assert upd.channels == as_given and IncidentUpdate.from_dict(upd.to_dict()) == upd
