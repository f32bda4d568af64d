"""What the Sentinel tests share (issue 17): the config, the secrets, the CLI, one alert's bytes, and the
retrying clients a monitor and a staff tool are: POST until 202/201, accepting only 503 + Retry-After
(counted) or a reset connection (counted: the request may or may not have landed, and the retry of the
same bytes / the same Idempotency-Key finds it or makes it) in between."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.sentinel import MASTER_NAME, SentinelCluster
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import ROOT, env_for, write_config

AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
PUBLISHER = {"Authorization": "Bearer publisher-token"}
SENTINEL_PASSWORD = "sentinel-s3cret"


def sentinel_config(tmp_path: Path, cluster: SentinelCluster, receiver: WebhookReceiver, **redis_extra: Any) -> Path:
    return write_config(tmp_path / "notifier.yaml", "", {
        "hook": {"type": "webhook", "url": receiver.url, "status_url": receiver.url + "/status",
                 "secret": "${HOOK_SECRET}"},
    }, redis={"sentinels": cluster.addresses, "master_name": MASTER_NAME,
              "sentinel_password": "${SENTINEL_PASSWORD}", **redis_extra},
        sources={"alertmanager": {"auth": "bearer", "token": "${AM_TOKEN}"}},
        staff={"tokens": [{"name": "pia", "role": "publisher", "token": "${PUBLISHER_TOKEN}"}]},
        # room for an engine pass that meets the failover (3 s killed one mid-way, and billiard's pool then
        # died of a corrupt result pipe: UnpicklingError); sends still time out after http_timeout 1 s
        delivery={"task_time_limit": 10, "lease_seconds": 12})


def set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "test-secret")
    monkeypatch.setenv("SENTINEL_PASSWORD", SENTINEL_PASSWORD)
    monkeypatch.setenv("AM_TOKEN", "am-token")
    monkeypatch.setenv("PUBLISHER_TOKEN", "publisher-token")


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", "--config", str(config), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=env_for(config))


@functools.cache
def alert(n: int) -> bytes:
    """Alert n, the same bytes on every retry (its event id comes from its fingerprint and times)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="ProbeFailed"}', "receiver": "notifier",
                       "status": "firing", "groupLabels": {"alertname": "ProbeFailed"}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://am.test:9093", "truncatedAlerts": 0,
                       "alerts": [{
        "status": "firing", "labels": {"alertname": "ProbeFailed", "instance": f"probe-{n}", "service": "imap"},
        "annotations": {"summary": f"probe {n}"}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"fp{n:06d}"}]}).encode()


def post_until(http: httpx.Client, ok: int, stats: Counter[str], kind: str, url: str, timeout: float = 120,
               **request: Any) -> httpx.Response:
    """POST until ``ok``, as a monitor or a staff tool retries. In between only a 503 with Retry-After
    (``stats[kind + "_503"]``) or a reset/refused connection (``stats[kind + "_reset"]``) is allowed:
    never a 500, never another answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = http.post(url, **request)
        except httpx.TransportError:
            stats[f"{kind}_reset"] += 1
        else:
            if resp.status_code == ok:
                return resp
            assert resp.status_code == 503, resp.text
            assert resp.headers.get("Retry-After"), "a 503 says when to retry"
            stats[f"{kind}_503"] += 1
        assert time.monotonic() < deadline, f"{kind} {url}: no {ok} within {timeout} s ({dict(stats)})"
        time.sleep(0.1)


def webhook(http: httpx.Client, n: int, stats: Counter[str], timeout: float = 120) -> list[str]:
    """Alert n POSTed until 202; its event ids (accepted now, or found by the retry as duplicates)."""
    body = post_until(http, 202, stats, "webhook", "/webhooks/alertmanager", timeout, content=alert(n),
                      headers=AM).json()
    return list(body["accepted"]) + list(body["duplicates"])


def broadcast(http: httpx.Client, n: int, stats: Counter[str], timeout: float = 120) -> str:
    """Broadcast n, retried with its Idempotency-Key until 201 (never two broadcasts); its update id."""
    resp = post_until(http, 201, stats, "write", "/api/v1/broadcasts", timeout, json={"body": f"notice {n}"},
                      headers={**PUBLISHER, "Idempotency-Key": f"broadcast-{n}"})
    return str(resp.json()["updates"][0]["id"])
