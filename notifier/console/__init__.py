"""The staff console at ``/console``: sign-in, dashboard, composer with live preview, timelines.

The API app includes it with ``api.include_router(create_router(app))`` (``create_router`` is
``console_router`` with its defaults; see docs/console.md for the options).
"""

from notifier.console.views import console_router

create_router = console_router

__all__ = ["console_router", "create_router"]
