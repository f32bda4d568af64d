"""The staff API: the same service functions as the CLI (``notifier.services.incidents`` and
``notifier.services.delivery``), behind bearer tokens with roles.

``viewer`` reads; ``editor`` drafts (its writes become drafts; asking to publish is a 403);
``publisher`` publishes, approves drafts and retries deliveries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from notifier import limits
from notifier.api.auth import require
from notifier.api.responses import TolerantJSON, render_json
from notifier.domain.model import Incident, IncidentUpdate
from notifier.errors import UsageError
from notifier.services import delivery, idempotent, incidents, maintenance
from notifier.staff import StaffMember

ComponentState = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]
ImpactLevel = Literal["none", "minor", "major", "critical"]

def _unicode(value: str) -> str:
    if not limits.valid_unicode(value):
        raise ValueError("not valid Unicode (a lone surrogate); send UTF-8 text")
    return value


# Every text of a request passes _unicode, and every one has a length limit (notifier.limits).
Text = Annotated[str, StringConstraints(max_length=limits.MAX_TEXT), AfterValidator(_unicode)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME), AfterValidator(_unicode)]
Short = Annotated[str, StringConstraints(max_length=limits.MAX_ID), AfterValidator(_unicode)]
Body = Annotated[dict[Short, Text], Field(max_length=limits.MAX_LANGUAGES)] | Text
# ids in paths: what the store hands out (inc42, inc42.3, inc42.3:x), nothing else reaches a service
IncidentId = Annotated[str, Path(pattern=r"^[a-z]{1,10}[0-9]{1,18}$", max_length=limits.MAX_ID)]
UpdateId = Annotated[str, Path(pattern=r"^[a-z]{1,10}[0-9]{1,18}\.[0-9]{1,9}$", max_length=limits.MAX_ID)]
NoticeId = Annotated[str, Path(pattern=r"^[a-z]{1,10}[0-9]{1,18}\.[0-9]{1,9}:[A-Za-z0-9_.-]{1,64}$",
                               max_length=limits.MAX_ID)]

router = APIRouter(prefix="/api/v1", tags=["staff"])
F = TypeVar("F", bound=Callable[..., Any])
viewer, editor, publisher = (Depends(require(r)) for r in ("viewer", "editor", "publisher"))


class _Text(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body = Field(description='text, or per language: {"en": "...", "de": "..."}')
    draft: bool | None = Field(None, description="default: publishers publish, editors draft")

    @field_validator("body")
    @classmethod
    def _text(cls, value: Body) -> Body:
        texts = [value] if isinstance(value, str) else list(value.values())
        if not texts or not all(t.strip() for t in texts):
            raise ValueError("must not be empty")
        return value


class _In(_Text):
    channels: list[Short] | None = Field(None, max_length=limits.MAX_CHANNELS,
                                         description="default: every configured channel")


Components = Annotated[dict[Short, ComponentState], Field(max_length=limits.MAX_COMPONENTS)]


class IncidentIn(_In):
    name: Name
    components: Components = {}
    impact: ImpactLevel = "minor"
    status: Literal["investigating", "identified", "monitoring"] = "investigating"


class UpdateIn(_In):
    status: Literal["investigating", "identified", "monitoring", "resolved",
                    "scheduled", "in_progress", "verifying", "completed"] | None = None
    components: Components | None = None
    impact: ImpactLevel | None = None


class ResolveIn(_In):
    pass


class BroadcastIn(_In):
    name: Name = "Notice"


class MaintenanceIn(_Text):
    name: Name
    components: list[Short] = Field(min_length=1, max_length=limits.MAX_COMPONENTS)
    scheduled_for: datetime
    scheduled_until: datetime
    announce: list[Literal["scheduled", "before", "start", "end"]] | None = Field(
        None, description="posts to make: at scheduling, a reminder before, at start, at end "
                          "(default: scheduled, start, end)")

    @field_validator("scheduled_for", "scheduled_until")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-12-01T22:00:00+01:00 or ...Z")
        if not 2000 <= value.year <= 9000:  # also keeps UTC conversion away from datetime's edges
            raise ValueError("must be a real date (year 2000 to 9000)")
        return value


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="send an 'unknown' notice without reconciling first")


def _app(request: Request) -> Any:
    return request.app.state.notifier


def _draft(member: StaffMember, asked: bool | None) -> bool:
    if member.can("publisher"):
        return bool(asked)
    if asked is False:
        raise HTTPException(403, f"publishing needs the publisher role; {member.name} is a {member.role}")
    return True


def _incident(inc: Any) -> dict[str, Any]:
    data: dict[str, Any] = inc.to_dict()
    return data


def _created(data: dict[str, Any]) -> Response:
    """A 201 with ``data`` (already JSON types: a ``to_dict()``) rendered directly: FastAPI would
    otherwise validate and re-encode the returned dict against ``dict[str, Any]`` (issue 14: the write
    path's CPU). The routes declare ``response_model`` so the OpenAPI document is unchanged."""
    return TolerantJSON(data, status_code=201)


def _keeps_answer(part: Callable[[Incident, IncidentUpdate], Incident | IncidentUpdate]) -> Callable[[F], F]:
    """An incident write's route: it returns the incident (or the update) it wrote, and answers a 201
    with its ``to_dict()``; ``part`` picks that same object out of the committed incident and update.
    With an ``Idempotency-Key`` the key is reserved here, on the route's own thread, and the write keeps
    this answer in its own transaction (``idempotent.answer_in_commit``): the gate has no Redis I/O of
    its own for these routes."""

    def render(inc: Incident, upd: IncidentUpdate) -> idempotent.Answer:
        return idempotent.Answer(201, "application/json", render_json(part(inc, upd).to_dict()))

    def decorate(route: F) -> F:
        @functools.wraps(route)
        def endpoint(*args: Any, **kwargs: Any) -> Response:
            record = idempotent.answer_in_commit(render)  # first thing: the key reserved before any write
            written = route(*args, **kwargs)
            if record is not None and record.kept is not None:
                kept = record.kept
                return Response(kept.body, status_code=kept.status, media_type=kept.media_type)
            return _created(written.to_dict())

        setattr(endpoint, idempotent.KEEPS_ANSWER, True)
        return cast(F, endpoint)

    return decorate


@router.get("/incidents", summary="List incidents, newest first")
def list_incidents(request: Request, kind: Literal["incident", "maintenance", "broadcast"] | None = None,
                   open_only: bool = False, limit: int = Query(50, ge=1, le=1000),
                   member: StaffMember = viewer) -> list[dict[str, Any]]:
    store = _app(request).store
    return [_incident(i) for i in store.list_incidents(kind=kind, open_only=open_only, limit=limit)]


@router.get("/incidents/{incident_id}", summary="One incident with its updates")
def get_incident(request: Request, incident_id: IncidentId, member: StaffMember = viewer) -> dict[str, Any]:
    return _incident(_app(request).store.get_incident(incident_id))


@router.post("/incidents", status_code=201, summary="Open an incident", response_model=dict[str, Any])
@_keeps_answer(lambda inc, upd: inc)
def create_incident(request: Request, data: IncidentIn, member: StaffMember = editor) -> Any:
    return incidents.open_incident(
        _app(request), name=data.name, components=data.components, impact=data.impact, body=data.body,
        status=data.status, author=member.name, channels=data.channels, draft=_draft(member, data.draft),
    )


@router.post("/incidents/{incident_id}/updates", status_code=201, summary="Add an update",
             response_model=dict[str, Any])
@_keeps_answer(lambda inc, upd: upd)
def add_update(
    request: Request, incident_id: IncidentId, data: UpdateIn, member: StaffMember = editor
) -> Any:
    return incidents.update_incident(
        _app(request), incident_id, status=data.status, body=data.body, components=data.components,
        impact=data.impact, author=member.name, channels=data.channels, draft=_draft(member, data.draft),
    )


@router.post("/incidents/{incident_id}/resolve", status_code=201, summary="Resolve (or complete)",
             response_model=dict[str, Any])
@_keeps_answer(lambda inc, upd: upd)
def resolve(
    request: Request, incident_id: IncidentId, data: ResolveIn, member: StaffMember = editor
) -> Any:
    return incidents.resolve_incident(_app(request), incident_id, body=data.body, author=member.name,
                                      channels=data.channels, draft=_draft(member, data.draft))


@router.post("/broadcasts", status_code=201, summary="A one-off notice on every channel",
             response_model=dict[str, Any])
@_keeps_answer(lambda inc, upd: inc)
def broadcast(request: Request, data: BroadcastIn, member: StaffMember = editor) -> Any:
    return incidents.broadcast(_app(request), name=data.name, body=data.body, author=member.name,
                               channels=data.channels, draft=_draft(member, data.draft))


@router.post("/maintenances", status_code=201, summary="Schedule a maintenance window")
def schedule_maintenance(
    request: Request, data: MaintenanceIn, member: StaffMember = editor
) -> dict[str, Any]:
    start, end = _aware(data.scheduled_for), _aware(data.scheduled_until)
    if end <= start:
        raise UsageError("scheduled_until: must be after scheduled_for")
    if _draft(member, data.draft):
        # the window takes effect when scheduled (the engine suppresses alerts and moves components)
        raise HTTPException(403 if not member.can("publisher") else 422,
                            "a maintenance window takes effect when scheduled and cannot be a draft; "
                            "a publisher schedules it")
    kwargs: dict[str, Any] = {} if data.announce is None else {"announce": data.announce}
    inc = maintenance.schedule_maintenance(
        _app(request), data.name, data.components, start, end, data.body, author=member.name, **kwargs
    )
    return _incident(inc)


@router.get("/drafts", summary="Updates waiting for a publisher")
def list_drafts(request: Request, member: StaffMember = viewer) -> list[dict[str, Any]]:
    return [{"incident": inc.id, "name": inc.name, "update": upd.to_dict()}
            for inc, upd in incidents.drafts(_app(request))]


@router.post("/drafts/{update_id}/approve", summary="Publish a draft")
def approve(request: Request, update_id: UpdateId, member: StaffMember = publisher) -> dict[str, Any]:
    return dict(incidents.approve_draft(_app(request), update_id, approver=member.name).to_dict())


@router.get("/deliveries", summary="Ledger rows (one per notice), newest first")
def list_deliveries(request: Request, channel: Short | None = None,
                    state: Literal["pending", "claimed", "posted", "posted-unverified", "unknown", "failed"] | None
                    = Query(None, description="posted-unverified: posted rows whose post could not be looked up "
                                              "(the platform refused a re-send as a duplicate); check the account"),
                    incident_id: Short | None = None, limit: int = Query(100, ge=1, le=5000),
                    member: StaffMember = viewer) -> list[dict[str, Any]]:
    stored = "posted" if state == "posted-unverified" else state
    rows = _app(request).store.ledger.rows(channel=channel, state=stored, incident_id=incident_id, limit=limit)
    return [_row(r) for r in rows if state != "posted-unverified" or r.unverified]


@router.post("/deliveries/{notice_id}/retry", summary="Try a failed or unknown notice again")
def retry(request: Request, notice_id: NoticeId, data: RetryIn | None = None,
          member: StaffMember = publisher) -> dict[str, str]:
    was = delivery.retry_delivery(_app(request), notice_id, force=bool(data and data.force))
    return {"notice_id": notice_id, "was": was, "now": "queued"}


def _row(row: Any) -> dict[str, Any]:
    keys = ("notice_id", "channel", "update_id", "incident_id", "state", "attempt", "remote_id", "url",
            "last_error", "created_at", "updated_at", "posted_at")
    out = {k: getattr(row, k, None) for k in keys}
    out["state"] = str(getattr(out["state"], "value", out["state"]))
    # what staff should read: "posted-unverified" for a posted row whose post could not be looked up
    out["shown_state"] = row.shown_state
    out["unverified"] = row.unverified
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: Annotated[Short, Field(min_length=1, max_length=64, description="the incident that continues")]


@router.post("/incidents/{incident_id}/merge", summary="Merge this incident into another (issue 13)")
def merge(request: Request, incident_id: IncidentId, data: MergeIn, member: StaffMember = publisher) -> dict[str, Any]:
    """The incident ends with a note pointing at ``into``; its components and alerts continue there."""
    from notifier.services.merge import merge_incidents

    return _incident(merge_incidents(_app(request), incident_id, data.into, author=member.name))


_RESERVING = [route for route in router.routes if isinstance(route, APIRoute) and "POST" in (route.methods or ())
              and getattr(route.endpoint, idempotent.KEEPS_ANSWER, False)]


def reserves_own_key(path: str) -> bool:
    """Whether a POST to ``path`` goes to one of the incident writes that reserve their
    ``Idempotency-Key`` on their own thread (``_keeps_answer``), so the gate need not. A path this does
    not recognise (another prefix, another router) has the gate reserve, as for every other write."""
    return any(route.path_regex.match(path) for route in _RESERVING)
