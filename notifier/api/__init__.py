"""The HTTP API (FastAPI on uvicorn): monitoring webhooks, the staff API and operations endpoints."""

from notifier.api.app import create_app

__all__ = ["create_app"]
