"""The ASGI app: ``create_app()`` wires webhooks, the staff API, operations endpoints and the staff
console (``notifier.console``, when installed) around one ``App`` from the composition root."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from notifier import limits
from notifier.api import ops, staff, staff_subscribers, subscribe, webhooks
from notifier.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from notifier.api.idempotency import IdempotencyGate
from notifier.api.limits import BodyLimit, RequestGate
from notifier.api.responses import TolerantJSON
from notifier.api.schemas import WEBHOOK_MODELS
from notifier.api.waker import EngineWaker
from notifier.errors import NotFound, StoreUnavailable, UsageError
from notifier.metrics import Metrics
from notifier.staff import authenticate

log = logging.getLogger(__name__)


def create_app(app: Any = None, settings: Any = None, idempotency_lease: float = 60.0) -> FastAPI:
    """An API around ``app``; without one, an App the composition root builds from ``settings`` (else
    the config ``load_settings()`` finds), sending through a Celery dispatcher for those same settings.

    ``idempotency_lease``: how long an ``Idempotency-Key`` stays reserved for a request that never
    answered (a crashed API); longer than any request takes."""
    if app is None:
        from notifier.bootstrap import build
        from notifier.config_loader import load_settings

        settings = settings if settings is not None else load_settings()
        app = build(settings, dispatcher=celery_dispatcher(settings))
    elif settings is not None and settings is not app.settings:
        raise ValueError("create_app: give an App or settings, not an App built from other settings")
    api = FastAPI(
        default_response_class=TolerantJSON,
        title="outage notifier",
        version="1",
        description="Monitoring webhooks in, incidents out. See docs/api.md.",
    )
    api.state.notifier = app
    api.state.metrics = Metrics(app)
    api.state.waker = EngineWaker(app.dispatcher)
    api.router.on_shutdown.append(api.state.waker.stop)
    api.include_router(webhooks.router())
    api.include_router(staff.router)
    api.include_router(ops.router)
    api.include_router(subscribe.router)
    api.include_router(staff_subscribers.router)
    _include_console(api, app)
    _errors(api)
    api.add_middleware(IdempotencyGate, principal=lambda token: authenticate(app.settings, token),
                       store=lambda: app, lease_seconds=idempotency_lease)
    api.add_middleware(BodyLimit, limit=limits.MAX_BODY_BYTES, skip_prefixes=("/webhooks/",))
    # added last, so it runs first: headers and the staff token are checked before any body is read
    api.add_middleware(RequestGate, authenticate=lambda token: authenticate(app.settings, token))
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def celery_dispatcher(settings: Any) -> Any:
    """The Celery dispatcher for ``settings`` (its broker is their Redis; no environment involved)."""
    from workers.dispatch import CeleryDispatcher

    return CeleryDispatcher(settings)


def app_for_config(config_path: str | None = None) -> FastAPI:
    """An ASGI factory for servers that take an import string (``uvicorn --factory``, gunicorn): the
    config path is explicit (None: ``$NOTIFIER_CONFIG``, config/notifier.yaml, else the defaults) and
    the App comes from the composition root like everywhere else."""
    from notifier.config_loader import load_settings

    return create_app(settings=load_settings(config_path))


def _include_console(api: FastAPI, app: Any) -> None:
    """The staff console (issue 6) under /console, when its package is installed."""
    if importlib.util.find_spec("notifier.console") is None:
        return
    from notifier.console import mount  # a broken console should fail loudly, not vanish

    mount(api, trust_proxy=app.settings.api.trust_proxy)


def _errors(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_problem(exc.errors()), status_code=422)

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": limits.printable(str(exc))}, status_code=404)

    @api.exception_handler(UsageError)
    async def usage(request: Request, exc: UsageError) -> JSONResponse:
        field = getattr(exc, "field", None)
        body = {"detail": limits.printable(str(exc)), **({"field": limits.printable(field)} if field else {})}
        return JSONResponse(body, status_code=422)

    @api.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "store unavailable; retry later"}, status_code=503,
                            headers={"Retry-After": "5"})

    @api.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("redis error on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": "store unavailable; retry later"}, status_code=503,
                            headers={"Retry-After": "5"})


def validation_problem(errors: Any) -> dict[str, Any]:
    """FastAPI's 422 body without the echoed input (which may be NaN, bytes or a lone surrogate that
    no JSON encoder takes): each error's location, message and type, and ``field``, the first location
    as a dotted path (``body.name``, ``path.incident_id``)."""
    out = []
    for err in errors:
        loc = [p if isinstance(p, int) else limits.printable(str(p)) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": limits.printable(str(err.get("msg", ""))),
                    "type": limits.printable(str(err.get("type", "")))})
    body: dict[str, Any] = {"detail": out}
    if out:
        body["field"] = ".".join(str(p) for p in out[0]["loc"]) or "(body)"
    return body


def _openapi(api: FastAPI) -> dict[str, Any]:
    if api.openapi_schema:
        return api.openapi_schema
    schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
    # The webhook bodies are documented by hand (the routes read raw bytes); hoist their nested models.
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in WEBHOOK_MODELS.values():
        full = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(full.pop("$defs", {}))
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "a staff token (staff.tokens[]) or a source's bearer token"},
        "hmac": {"type": "apiKey", "in": "header", "name": "X-Notifier-Signature",
                 "description": "sha256=<hex HMAC of '<X-Notifier-Timestamp>.<raw body>'> (sources with auth: hmac)"},
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/api/v1/"):
                operation["security"] = [{"bearer": []}]
            if path.startswith("/api/v1/") and operation is operations.get("post"):
                operation.setdefault("parameters", []).append({
                    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                    "description": "repeat the request with the same key (24 h, per staff token) and get the "
                                   "first answer, with nothing changed; a different request with it gets 422, "
                                   "one still running 409",
                })
            elif path.startswith("/webhooks/"):
                operation["security"] = [{"bearer": []}, {"hmac": []}]
    api.openapi_schema = schema
    return schema
