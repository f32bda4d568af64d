"""Alert events: what monitors send, normalised by a source parser before the incident engine sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from notifier.domain.model import from_iso, to_iso


@dataclass(frozen=True)
class AlertEvent:
    source: str  # "alertmanager", "grafana", "uptime-kuma", "generic", "staff"
    fingerprint: str  # identity of the alert within its source
    status: str  # "firing" | "resolved"
    labels: dict[str, str]
    starts_at: datetime
    received_at: datetime
    annotations: dict[str, str] = field(default_factory=dict)
    group_key: str | None = None  # the source's own grouping (Alertmanager groupKey, Kuma monitor, ...)
    severity: str | None = None
    summary: str = ""
    ends_at: datetime | None = None

    @property
    def id(self) -> str:
        """Same alert, same transition -> same id: a payload delivered twice has no second effect."""
        key = json.dumps(
            [self.source, self.fingerprint, self.status, to_iso(self.starts_at), to_iso(self.ends_at)],
            separators=(",", ":"),
        )
        return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("starts_at", "received_at", "ends_at"):
            data[key] = to_iso(data[key])
        data["id"] = self.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertEvent:
        data = {k: v for k, v in data.items() if k != "id"}
        for key in ("starts_at", "received_at", "ends_at"):
            data[key] = from_iso(data.get(key))
        return cls(**data)
