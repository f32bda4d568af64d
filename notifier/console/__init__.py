"""The staff console at ``/console``: sign-in, dashboard, composer with live preview, timelines.

Wire it into the API app with ``app.include_router(console_router(notifier_app))``.
"""

from notifier.console.views import console_router

__all__ = ["console_router"]
