"""Secrets never reach a log line: every configured secret value is masked in every log record.

Installed as a log-record factory, so it covers every logger and handler, including the ones Celery
and uvicorn configure later, and the request logs of libraries we don't control (tweepy logs its
Authorization header at DEBUG; urllib3 logs request URLs with their query strings).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, SecretStr

MASK = "**********"
_installed: dict[str, Any] = {}


def secret_values(model: Any) -> set[str]:
    """Every SecretStr value inside ``model`` (nested models, lists and dicts), and Redis passwords."""
    found: set[str] = set()
    if isinstance(model, SecretStr):
        value = model.get_secret_value()
        found.add(value)
        parts = urlsplit(value) if "://" in value else None
        if parts is not None:
            if parts.password:
                found.add(parts.password)
            found.update(parse_qs(parts.query).get("password", []))
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            found |= secret_values(getattr(model, name))
    elif isinstance(model, dict):
        for value in model.values():
            found |= secret_values(value)
    elif isinstance(model, list | tuple):
        for value in model:
            found |= secret_values(value)
    return {s for s in found if len(s) >= 4}


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def add_secrets(values: Iterable[str]) -> None:
    """Mask these too (parts of a secret that libraries log on their own, e.g. a token inside an API
    URL that Apprise builds from a channel's URL). Takes effect where ``install`` has run."""
    known = set(_installed.get("secrets") or ()) | {v for v in values if len(v) >= 4}
    _installed["secrets"] = sorted(known, key=len, reverse=True)


def install(settings: Any, extra: Iterable[str] = ()) -> None:
    """Mask this configuration's secrets in every log record created from now on (idempotent)."""
    secrets = sorted(secret_values(settings) | {s for s in extra if len(s) >= 4}, key=len, reverse=True)
    _installed["secrets"] = secrets
    if "factory" not in _installed:
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            known = _installed.get("secrets") or ()
            if known:
                try:
                    message = record.getMessage()
                except Exception:  # noqa: BLE001 - a broken format string is logging's business
                    return record
                cleaned = redact(message, known)
                if cleaned != message:
                    record.msg, record.args = cleaned, None
            return record

        logging.setLogRecordFactory(factory)
        _installed["factory"] = factory
    for noisy in ("urllib3", "tweepy", "botocore", "boto3", "s3transfer", "apprise"):  # request dumps at DEBUG
        if logging.getLogger(noisy).getEffectiveLevel() < logging.INFO:
            logging.getLogger(noisy).setLevel(logging.INFO)
