"""The statuspage channel on the real path: real Redis, the incident and delivery services, two targets."""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from notifier.bootstrap import App, build
from notifier.cli.statuspage import register
from notifier.clock import FakeClock
from notifier.config_loader import parse_settings
from notifier.domain.model import ComponentStatus, DeliveryState
from notifier.services.delivery import deliver
from notifier.services.incidents import open_incident, update_incident
from notifier.services.statuspage import republish
from notifier.store.local_redis import LocalRedis
from tests.fakes.statuspage_model import NOW

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LocalRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


def config(tmp_path: Path, redis_url: str, dead_port: int) -> str:
    return f"""
page: {{id: pg1, name: Example Mail, url: "https://status.example.com/", stale_after_minutes: 15}}
redis: {{url: "{redis_url}", key_prefix: "t{tmp_path.name[-8:]}:"}}
components:
  - {{id: imap, name: IMAP, group: Mail}}
  - {{id: smtp, name: SMTP, group: Mail}}
channels:
  page-local: {{type: statuspage, target: directory, path: "{tmp_path / "site"}"}}
  page-s3:
    type: statuspage
    target: s3
    bucket: status
    endpoint_url: "http://127.0.0.1:{dead_port}"
    access_key_id: ${{S3_KEY}}
    secret_access_key: ${{S3_SECRET}}
"""


@pytest.fixture
def app(tmp_path: Path, redis_url: str) -> App:
    text = config(tmp_path, redis_url, free_port())
    (tmp_path / "notifier.yaml").write_text(text)
    settings = parse_settings(text, env={"S3_KEY": "k", "S3_SECRET": "s"})
    return build(
        settings, clock=FakeClock(NOW), redis_client=redis.Redis.from_url(redis_url, decode_responses=True)
    )


def deliver_all(app: App) -> None:
    sent = list(app.dispatcher.sent)  # type: ignore[attr-defined]
    app.dispatcher.sent.clear()  # type: ignore[attr-defined]
    for notice_id, _channel, _countdown in sent:
        deliver(app, notice_id)


def test_an_incident_reaches_the_page_and_a_dead_mirror_blocks_nothing(app: App, tmp_path: Path) -> None:
    inc = open_incident(
        app,
        name="IMAP down <b>now</b>",
        components={"imap": "major_outage"},
        impact="major",
        body={"en": "Logins fail. <script>window.pwned=1</script>", "de": "Anmeldung schlägt fehl."},
        author="alice",
    )
    deliver_all(app)
    rows = {r.channel: r for r in app.store.ledger.rows()}
    assert rows["page-local"].state == DeliveryState.POSTED
    assert rows["page-local"].url == f"https://status.example.com/incidents/{inc.id}.html"
    assert rows["page-s3"].state == DeliveryState.PENDING and "unreachable" in rows["page-s3"].last_error

    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert "IMAP down &lt;b&gt;now&lt;/b&gt;" in index and "&lt;script&gt;window.pwned=1" in index
    imap = index.split('id="c-imap"', 1)[1].split("</li>", 1)[0]
    assert "Major outage" in imap and "<i class=x " in imap  # today's bar from the stored history
    summary = json.loads((site / "api/v2/summary.json").read_text())
    assert summary["status"]["indicator"] == "critical"
    assert [i["id"] for i in summary["incidents"]] == [inc.id]
    assert "Anmeldung schlägt fehl." in (site / f"de/incidents/{inc.id}.html").read_text()

    mnt = open_incident(
        app,
        name="SMTP relay move",
        components={"smtp": "under_maintenance"},
        kind="maintenance",
        body={"en": "Relays move."},
        author="alice",
        scheduled_for=NOW + timedelta(days=1),
        scheduled_until=NOW + timedelta(days=1, hours=2),
    )
    deliver_all(app)
    upcoming = json.loads((site / "api/v2/scheduled-maintenances/upcoming.json").read_text())
    assert [m["id"] for m in upcoming["scheduled_maintenances"]] == [mnt.id]
    app.clock.advance(minutes=10)  # type: ignore[attr-defined]
    update_incident(app, inc.id, status="identified", body={"en": "A disk failed."}, author="alice")
    deliver_all(app)
    channel = app.channels["page-local"]
    hits = channel.cache.hits  # type: ignore[attr-defined]
    assert hits >= 2  # the maintenance's pages (en, de) were reused, not re-rendered
    page = (site / f"incidents/{inc.id}.html").read_text()
    assert page.index("A disk failed.") < page.index("Logins fail.")


def test_heartbeat_republishes_state_without_an_incident_update(app: App, tmp_path: Path) -> None:
    app.store.set_component_status("smtp", ComponentStatus.DEGRADED_PERFORMANCE, NOW)
    results = republish(app)
    assert results["page-local"].startswith("ok ")
    assert results["page-s3"].startswith("error: S3 endpoint unreachable")
    smtp = (tmp_path / "site/index.html").read_text().split('id="c-smtp"', 1)[1].split("</li>", 1)[0]
    assert "Degraded performance" in smtp


def test_cli_build_and_publish(
    app: App, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_KEY", "k")
    monkeypatch.setenv("S3_SECRET", "s")
    app.store.set_component_status("imap", ComponentStatus.PARTIAL_OUTAGE, NOW)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    cfg = str(tmp_path / "notifier.yaml")

    args = parser.parse_args(["statuspage", "build", "--out", str(tmp_path / "out"), "--config", cfg])
    assert args.func(args) == 0
    assert "Partial outage" in (tmp_path / "out/index.html").read_text()

    args = parser.parse_args(["statuspage", "publish", "--channel", "page-local", "--config", cfg])
    assert args.func(args) == 0
    assert (tmp_path / "site").is_symlink()
    args = parser.parse_args(["statuspage", "publish", "--config", cfg])
    assert args.func(args) == 69  # the dead mirror fails, and says so (EX_UNAVAILABLE)
    err = capsys.readouterr().err
    assert "page-s3: FAILED" in err
    args = parser.parse_args(["statuspage", "publish", "--channel", "nope", "--config", cfg])
    assert args.func(args) == 64
