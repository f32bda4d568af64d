"""The whole way: a real Alertmanager fires and resolves alerts against the running API; the incident
engine turns the queued events into one incident; its notices are delivered to a local webhook receiver.

Posts are counted at the receiver: one for the opening, one for the resolution, however many alerts.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from notifier.api import create_app
from notifier.config_loader import parse_settings
from notifier.services import delivery
from notifier.services import engine_runner as engine
from tests.integration._api_support import TOKENS, ApiServer, free_port, make_app, redis_server, wait_for
from tests.integration.test_api_alertmanager import CONFIG as AM_CONFIG
from tests.integration.test_api_alertmanager import alert

# Alertmanager (Go) keeps the real clock and refuses alerts that start "in the future": first pass only.
pytestmark = [pytest.mark.integration, pytest.mark.real_clock]

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if BINARY is None:
    pytest.skip("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
                "scripts/apt-test.txt lists it; make test installs it as root)", allow_module_level=True)

CONFIG = """
redis: {key_prefix: "e2e:"}
components:
  - {id: imap, name: IMAP, group: Mail}
channels:
  hook: {type: webhook, url: "%(url)s", secret: "${HOOK_SECRET}"}
sources:
  alertmanager: {auth: bearer, token: "${AM_TOKEN}"}
engine:
  confirm: {seconds: 0, component_status_seconds: 0}
  resolve: {seconds: 0}
  settle: {seconds: 0}
  routing:
    routes:
      - {match: {service: imap}, components: [imap]}
"""


def test_alertmanager_storm_to_one_post_per_transition(tmp_path, receiver):
    settings = parse_settings(CONFIG % {"url": receiver.url}, "test", env={**TOKENS, "HOOK_SECRET": "test-secret"})
    cred = tmp_path / "token"
    cred.write_text(TOKENS["AM_TOKEN"])
    with redis_server(tmp_path / "redis") as (_, rport):
        app = make_app(settings, rport)

        def run_engine_and_deliver() -> None:
            # what the worker does on a wake-up or beat tick, done in-process here
            engine.process_events(app)
            engine.tick(app)
            while app.dispatcher.sent:
                notice_id, _, _ = app.dispatcher.sent.pop(0)
                delivery.deliver(app, notice_id)

        with ApiServer(create_app(app)) as api:
            conf = tmp_path / "alertmanager.yml"
            conf.write_text(AM_CONFIG % {"url": api.url, "cred": cred})
            am_port = free_port()
            with (tmp_path / "am.log").open("wb") as log:
                proc = subprocess.Popen(
                    [BINARY, f"--config.file={conf}", f"--storage.path={tmp_path / 'am'}",
                     f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                    stdout=log, stderr=subprocess.STDOUT,
                )
                try:
                    am = httpx.Client(base_url=f"http://127.0.0.1:{am_port}", timeout=5)

                    def ready() -> bool:
                        try:
                            return am.get("/-/ready").status_code == 200
                        except httpx.HTTPError:
                            return False

                    wait_for(ready, what="alertmanager to start")
                    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
                    hosts = [f"mx{i}:993" for i in range(1, 21)]  # a storm: 20 alerts, one group
                    assert am.post("/api/v2/alerts", json=[alert(h, start) for h in hosts]).status_code == 200
                    wait_for(lambda: engine_seen(app) >= len(hosts), what="20 firing events")
                    run_engine_and_deliver()
                    wait_for(lambda: len(receiver.received) >= 1, what="the first post")
                    opened = app.store.list_incidents(open_only=True)
                    assert len(opened) == 1 and opened[0].components == ["imap"]
                    inc = opened[0].id

                    now = datetime.now(UTC)
                    assert am.post("/api/v2/alerts", json=[alert(h, start, now) for h in hosts]).status_code == 200
                    wait_for(lambda: engine_seen(app) >= 2 * len(hosts), what="20 resolved events")

                    def resolved() -> bool:
                        run_engine_and_deliver()
                        return not app.store.list_incidents(open_only=True)

                    wait_for(resolved, what="the incident to resolve")
                    run_engine_and_deliver()
                    assert receiver.keys() == [f"{inc}.1:hook", f"{inc}.2:hook"]  # opened, resolved
                    assert [p["body"]["incident"]["status"] for p in receiver.received] == [
                        "investigating", "resolved"]
                    assert app.store.component_statuses()["imap"] == "operational"
                finally:
                    proc.terminate()
                    proc.wait(10)


def engine_seen(app) -> int:
    """Events accepted so far (the engine trims acknowledged ones from the stream, not these keys)."""
    return len(app.store.redis.keys("e2e:event:seen:*"))
