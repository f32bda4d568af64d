"""``POST /webhooks/<source>``: authenticate, bound the body, parse, queue durably, then answer 202.

| situation                              | answer |
| -------------------------------------- | ------ |
| source not enabled in ``sources:``     | 404    |
| missing or bad auth                    | 401    |
| body over 1 MiB (declared or streamed) | 413    |
| a payload that can never be accepted   | 422 with ``field`` |
| durably queued in Redis                | 202 ``{"accepted": [...], "duplicates": [...]}`` |
| Redis cannot take it                   | 503 (Alertmanager retries on 5xx) |
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from notifier.api.auth import BEARER_CHALLENGE, Unauthorized, check_bearer, check_signature
from notifier.api.schemas import WEBHOOK_MODELS, AcceptedEvents, Problem
from notifier.errors import StoreUnavailable
from notifier.limits import MAX_BODY_BYTES, first_invalid
from notifier.services.ingest import accept_events
from notifier.sources import PARSERS, ParseError

log = logging.getLogger(__name__)


class TooLarge(Exception):
    pass


def problem(status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"detail": detail}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whether declared or streamed (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def receive(request: Request, source: str) -> Any:
    app: Any = request.app.state.notifier
    metrics = request.app.state.metrics
    conf = app.settings.sources.get(source)
    if conf is None:
        return problem(404, f"source {source!r} is not enabled; add it under sources: in the config")
    try:
        if conf.auth == "bearer":
            check_bearer(conf, request)
        body = await read_body(request)
        if conf.auth == "hmac":
            check_signature(conf, request, body, time.time())
    except Unauthorized as exc:
        metrics.count(source, "rejected_auth")
        return problem(401, exc.reason, headers=BEARER_CHALLENGE if conf.auth == "bearer" else None)
    except TooLarge:
        metrics.count(source, "too_large")
        return problem(413, f"body over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
        bad = first_invalid(data)  # one check for every source, before any parser sees the text
        if bad is not None:
            raise ParseError(bad, "not valid Unicode (a lone surrogate); send UTF-8 text")
        events = PARSERS[source](data, datetime.now(UTC))
    except ParseError as exc:
        metrics.count(source, "invalid")
        return problem(422, exc.message, exc.field)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError too)
        metrics.count(source, "invalid")
        return problem(422, "body is not valid JSON", "(body)")
    try:
        result = await run_in_threadpool(accept_events, app, events, wake=False)
    except StoreUnavailable as exc:
        log.warning("%s webhook: %s", source, exc)  # the details (Redis address) stay in our log
        metrics.count(source, "unavailable", max(1, len(events)))
        return problem(503, "could not queue the events; retry later", headers={"Retry-After": "5"})
    if result.accepted:
        request.app.state.waker.poke()
    metrics.count(source, "accepted", len(result.accepted))
    metrics.count(source, "duplicate", len(result.duplicates))
    return JSONResponse({"accepted": result.accepted, "duplicates": result.duplicates}, status_code=202)


def _route(source: str) -> Any:
    async def handler(request: Request) -> Any:
        return await receive(request, source)

    handler.__name__ = f"webhook_{source.replace('-', '_')}"
    return handler


def router() -> APIRouter:
    r = APIRouter(prefix="/webhooks", tags=["webhooks"])
    for source in PARSERS:
        schema = WEBHOOK_MODELS[source].model_json_schema(ref_template="#/components/schemas/{model}")
        r.add_api_route(
            f"/{source}",
            _route(source),
            methods=["POST"],
            status_code=202,
            summary=f"Receive a {source} webhook",
            response_model=AcceptedEvents,
            responses={
                401: {"model": Problem, "description": "missing or bad auth"},
                404: {"model": Problem, "description": "source not enabled"},
                413: {"model": Problem, "description": "body over 1 MiB"},
                422: {"model": Problem, "description": "payload can never be accepted; `field` names why"},
                503: {"model": Problem, "description": "could not queue; retry"},
            },
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            },
        )
    return r
