"""Request and response models published in the OpenAPI document.

The webhook routes read the raw body themselves (signatures are computed over the exact bytes), so
their models document the payloads; the parsers in ``notifier.sources`` are the validators and name the
failing field in a 422.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from notifier.sources.generic import GenericPayload


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AmAlert(_Open):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str
    endsAt: str = "0001-01-01T00:00:00Z"
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerWebhook(_Open):
    """Alertmanager ``webhook_configs`` payload, version 4."""

    version: Literal["4"]
    groupKey: str = ""
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    alerts: list[AmAlert]
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    truncatedAlerts: int = 0


class GrafanaWebhook(_Open):
    """Grafana unified alerting webhook contact point (Alertmanager's shape plus Grafana fields)."""

    version: str = "1"
    orgId: int | None = None
    groupKey: str = ""
    status: Literal["firing", "resolved"] = "firing"
    alerts: list[AmAlert]
    title: str = ""
    message: str = ""


class KumaHeartbeat(_Open):
    monitorID: int | None = None
    status: Literal[0, 1, 2, 3] = Field(description="0 down, 1 up, 2 pending, 3 maintenance")
    time: str = Field(description="UTC, e.g. 2024-09-24 23:51:35.527")
    msg: str = ""


class KumaMonitor(_Open):
    id: int
    name: str
    type: str = ""
    url: str | None = None
    hostname: str | None = None
    tags: list[dict[str, Any]] = []


class UptimeKumaWebhook(_Open):
    """Uptime Kuma webhook notification (JSON). ``heartbeat``/``monitor`` are null for a test."""

    heartbeat: KumaHeartbeat | None = None
    monitor: KumaMonitor | None = None
    msg: str = ""


WEBHOOK_MODELS: dict[str, type[BaseModel]] = {
    "alertmanager": AlertmanagerWebhook,
    "grafana": GrafanaWebhook,
    "uptime-kuma": UptimeKumaWebhook,
    "generic": GenericPayload,
}


class AcceptedEvents(BaseModel):
    accepted: list[str] = Field(description="ids of events queued for the incident engine")
    duplicates: list[str] = Field(description="ids seen before (within 7 days): no second effect")


class Problem(BaseModel):
    detail: str
    field: str | None = None
