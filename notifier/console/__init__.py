"""The staff console at ``/console``: sign-in, dashboard, composer with live preview, timelines.

The API app serves it with ``mount(api, ...)`` (see docs/console.md for the options); the routes
read the App from ``api.state.notifier``.
"""

from notifier.console.pages import ConsoleOptions
from notifier.console.router import mount, router

__all__ = ["ConsoleOptions", "mount", "router"]
