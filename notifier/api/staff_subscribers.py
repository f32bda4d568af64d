"""The staff API's subscriber routes: counts (viewer), the CSV export and removing an address (publisher,
since both touch personal data); webhook subscribers' counts and removal. The same service functions as
`notifier subscribers`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from notifier.api.auth import require
from notifier.errors import NotFound
from notifier.services import subscriptions
from notifier.services.subscriptions import NotConfigured
from notifier.staff import StaffMember

router = APIRouter(prefix="/api/v1/subscribers", tags=["staff"])
viewer, publisher = Depends(require("viewer")), Depends(require("publisher"))


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="the subscriber's e-mail address")


class RemoveHookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="the webhook subscriber's URL")


@router.get("/counts", summary="Confirmed subscribers: total, of every component, and per component")
async def counts(request: Request, member: StaffMember = viewer) -> dict[str, int]:
    return await _call(subscriptions.counts, request.app.state.notifier)


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except NotConfigured as exc:
        raise NotFound(str(exc)) from None


@router.get("/export.csv", response_class=PlainTextResponse,
            summary="Every confirmed subscriber as CSV (address, components, language, both times)")
async def export(request: Request, member: StaffMember = publisher) -> PlainTextResponse:
    text = await _call(subscriptions.export_csv, request.app.state.notifier)
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="subscribers.csv"',
                                      "Cache-Control": "no-store"})


@router.post("/remove", summary="Forget an address (404 if it is not subscribed)")
async def remove(request: Request, data: RemoveIn, member: StaffMember = publisher) -> dict[str, Any]:
    if not await _call(subscriptions.remove, request.app.state.notifier, data.address):
        raise NotFound("that address is not subscribed")
    return {"removed": True}


@router.get("/webhooks/counts", summary="Confirmed webhook subscribers: total, of every component, and per component")
async def hook_counts(request: Request, member: StaffMember = viewer) -> dict[str, int]:
    return await _call(subscriptions.hook_counts, request.app.state.notifier)


@router.post("/webhooks/remove", summary="Forget a webhook subscriber's URL (404 if it is not subscribed)")
async def remove_hook(request: Request, data: RemoveHookIn, member: StaffMember = publisher) -> dict[str, Any]:
    if not await _call(subscriptions.remove_hook, request.app.state.notifier, data.url):
        raise NotFound("that URL is not subscribed")
    return {"removed": True}
