"""Operations: ``/healthz`` (the process answers), ``/readyz`` (Redis answers and a worker is alive),
``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the API process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readiness(app: Any) -> tuple[bool, dict[str, Any]]:
    """Redis reachable, and at least one worker heartbeat key (``<prefix>worker:heartbeat:<host>``)."""
    checks: dict[str, Any] = {}
    try:
        app.require_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["workers"] = "unknown"
        return False, checks
    pattern = app.settings.redis.key_prefix + "worker:heartbeat:*"
    # SCAN walks the keyspace; stop at the first live worker instead of listing them all
    found = next(iter(app.require_redis().scan_iter(match=pattern, count=1000)), None)
    checks["workers"] = f"alive ({found.rsplit(':', 1)[-1]}, ...)" if found else "none alive (no heartbeat key)"
    return found is not None, checks


@router.get("/readyz", summary="Readiness: Redis reachable and a worker alive",
            responses={503: {"description": "not ready; the body says which check failed"}})
async def readyz(request: Request) -> Any:
    ready, checks = await run_in_threadpool(readiness, request.app.state.notifier)
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    data = await run_in_threadpool(generate_latest, registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
