"""A real Alertmanager (Debian's prometheus-alertmanager) fires and resolves alerts against the running
API; the events must land in the Redis stream, once each."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from notifier.api import create_app
from notifier.domain.events import AlertEvent
from tests.integration._api_support import (
    TOKENS,
    ApiServer,
    free_port,
    make_app,
    redis_server,
    settings_for,
    wait_for,
)

# Alertmanager (Go) keeps the real clock and refuses alerts that start "in the future": first pass only.
pytestmark = [pytest.mark.integration, pytest.mark.real_clock]

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if BINARY is None:
    pytest.skip(
        "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
        "scripts/apt-test.txt lists it; make test installs it as root)",
        allow_module_level=True,
    )

CONFIG = """
route:
  receiver: notifier
  group_by: [alertname, service]
  group_wait: 200ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: notifier
    webhook_configs:
      - url: %(url)s/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: %(cred)s
"""


def alert(instance: str, starts: datetime, ends: datetime | None = None) -> dict:
    body = {
        "labels": {
            "alertname": "ServiceDown",
            "service": "imap",
            "instance": instance,
            "severity": "critical",
        },
        "annotations": {"summary": f"IMAP is not answering on {instance}"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
    }
    if ends is not None:
        body["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    return body


def test_real_alertmanager_fires_and_resolves_into_the_stream(tmp_path):
    cred = tmp_path / "token"
    cred.write_text(TOKENS["AM_TOKEN"])
    with redis_server(tmp_path / "redis") as (_, rport):
        app = make_app(settings_for(tmp_path), rport)
        with ApiServer(create_app(app)) as api:
            conf = tmp_path / "alertmanager.yml"
            conf.write_text(CONFIG % {"url": api.url, "cred": cred})
            am_port = free_port()
            log = (tmp_path / "am.log").open("wb")
            proc = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={conf}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                am = httpx.Client(base_url=f"http://127.0.0.1:{am_port}", timeout=5)

                def ready():
                    try:
                        return am.get("/-/ready").status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_for(ready, what="alertmanager to start")

                def events() -> list[AlertEvent]:
                    return [
                        AlertEvent.from_dict(json.loads(f["event"]))
                        for _, f in app.store.redis.xrange("t:events")
                    ]

                start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
                resp = am.post("/api/v2/alerts", json=[alert("mx1:993", start), alert("mx2:993", start)])
                assert resp.status_code == 200, resp.text
                firing = wait_for(lambda: len(events()) >= 2 and events(), what="two firing events")
                assert {e.labels["instance"] for e in firing} == {"mx1:993", "mx2:993"}
                assert all(e.status == "firing" and e.source == "alertmanager" for e in firing)
                assert len({e.group_key for e in firing}) == 1

                # mx1 recovers: Alertmanager re-sends the whole group with mx1 resolved
                resp = am.post("/api/v2/alerts", json=[alert("mx1:993", start, datetime.now(UTC))])
                assert resp.status_code == 200
                done = wait_for(lambda: len(events()) >= 3 and events(), what="the resolved event")
                resolved = [e for e in done if e.status == "resolved"]
                assert [e.labels["instance"] for e in resolved] == ["mx1:993"]
                # the re-sent snapshot's still-firing mx2 was a duplicate: no second event
                assert sorted(e.labels["instance"] for e in done if e.status == "firing") == [
                    "mx1:993",
                    "mx2:993",
                ]
                assert len(done) == 3
                wait_for(lambda: app.dispatcher.wakeups >= 1, what="an engine wake-up")
            finally:
                proc.terminate()
                proc.wait(10)
                log.close()
