"""The console's routes under ``/console``, and ``mount``, which puts them into an ASGI app.

Every page works without JavaScript; ``static/console.js`` only adds a live preview while typing.
Routes check the session, its CSRF token and the role through the dependencies in ``guards``, call
the same service functions as the CLI and the staff API, and redirect (POST-redirect-GET) or re-render
with errors. They find the wired App on ``request.app.state.notifier``, where ``create_app`` puts it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from notifier.console import probes, routes_actions, routes_auth, routes_compose, routes_pages
from notifier.console.guards import Refused, send_refusal
from notifier.console.pages import ConsoleOptions

router = APIRouter(prefix="/console", include_in_schema=False)
for _routes in (routes_auth, routes_pages, routes_compose, routes_actions, probes):
    router.include_router(_routes.router)


def mount(
    api: FastAPI,
    *,
    session_ttl: int = 8 * 3600,
    signin_limit: int = 5,
    signin_window: int = 60,
    trust_proxy: bool = False,
    refresh_seconds: int = 10,
) -> None:
    """Serve the console from ``api``, whose ``state.notifier`` holds the App.

    ``trust_proxy``: believe ``X-Forwarded-Proto``/``X-Forwarded-For`` from a TLS-terminating proxy.
    ``refresh_seconds``: how often the dashboard and timelines refresh themselves (JavaScript; 0: never).
    """
    api.state.console = ConsoleOptions(session_ttl, signin_limit, signin_window, trust_proxy, refresh_seconds)
    api.add_exception_handler(Refused, send_refusal)
    api.include_router(router)
