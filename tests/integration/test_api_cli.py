"""`notifier api` as a user runs it: a uvicorn process built by create_app(settings=...) with the Celery
dispatcher, answering a real webhook and queueing its events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.integration._api_support import TOKENS, free_port, redis_server, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AM_FIRING = (ROOT / "tests/data/alertmanager/firing-imap-two-instances.json").read_bytes()



def test_notifier_api_serves_and_queues(tmp_path):
    with redis_server(tmp_path / "redis") as (_, rport):
        config = tmp_path / "notifier.yaml"
        config.write_text(
            f'redis: {{url: "redis://127.0.0.1:{rport}/0", key_prefix: "cli:"}}\n'
            "components: [{id: imap, name: IMAP}]\n"
            "channels: {outbox: {type: outbox, path: " + str(tmp_path / "outbox.jsonl") + "}}\n"
            'sources: {alertmanager: {token: "${AM_TOKEN}"}}\n'
        )
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
        env.update({"AM_TOKEN": TOKENS["AM_TOKEN"], "PYTHONPATH": str(ROOT)})
        log = (tmp_path / "api.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "notifier", "--config", str(config), "api", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"

            def up() -> bool:
                assert proc.poll() is None, (tmp_path / "api.log").read_text()
                try:
                    return httpx.get(base + "/healthz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, what="notifier api to listen")
            resp = httpx.post(base + "/webhooks/alertmanager", content=AM_FIRING,
                              headers={"Authorization": f"Bearer {TOKENS['AM_TOKEN']}"})
            assert resp.status_code == 202, resp.text
            assert redis.Redis(port=rport).xlen("cli:events") == 2
            assert httpx.get(base + "/readyz").json()["checks"]["redis"] == "ok"
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
