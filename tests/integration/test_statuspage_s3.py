"""Publishing to a real S3-compatible HTTP endpoint (moto's server, on loopback, random port)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from notifier.errors import Permanent, Transient
from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import S3Target, s3_client
from tests.fakes.statuspage_model import NOW, sample_snapshot

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def client(endpoint: str) -> Any:
    return s3_client(endpoint, "us-east-1", "testing-key", "testing-secret", timeout=5)


def recording(client: Any) -> list[str]:
    """Keys in the order the real client sent them (botocore's own event hook, no mocking)."""
    order: list[str] = []
    client.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: order.append(params["Key"]))
    return order


def test_every_object_lands_with_content_type_cache_control_and_order(client: Any) -> None:
    client.create_bucket(Bucket="status")
    files = render_site(sample_snapshot(), NOW)
    order = recording(client)
    result = S3Target(client, "status", prefix="page", cache_seconds=30, asset_cache_seconds=900).publish(files, NOW)
    assert result.written == len(files) and result.skipped == 0

    listed = {o["Key"] for o in client.list_objects_v2(Bucket="status")["Contents"]}
    assert listed == {f"page/{p}" for p in files}
    expected_types = {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",  # static/stale.js (no inline script: CSP)
        ".json": "application/json; charset=utf-8",
        ".atom": "application/atom+xml; charset=utf-8",
        ".rss": "application/rss+xml; charset=utf-8",
    }
    for path, data in files.items():
        obj = client.get_object(Bucket="status", Key=f"page/{path}")
        assert obj["Body"].read() == data, path
        suffix = "." + path.rsplit(".", 1)[1]
        assert obj["ContentType"] == expected_types[suffix], path
        assert obj["CacheControl"] == ("public, max-age=900" if path.startswith("static/") else "public, max-age=30")
    summary = json.loads(client.get_object(Bucket="status", Key="page/api/v2/summary.json")["Body"].read())
    assert summary["status"]["indicator"] == "critical"

    keys = list(order)
    assert keys[-1] == "page/index.html" and keys[-2] == "page/de/index.html"
    kinds = [("static" if "/static/" in k else k.rsplit(".", 1)[1]) for k in keys[:-2]]
    first = {kind: kinds.index(kind) for kind in ("static", "html", "json", "atom")}
    last = {kind: len(kinds) - 1 - kinds[::-1].index(kind) for kind in ("static", "html", "json")}
    assert last["static"] < first["html"] and last["html"] < first["json"] and last["json"] < first["atom"]


def test_republish_skips_unchanged_objects_but_always_rewrites_index(client: Any) -> None:
    client.create_bucket(Bucket="again")
    target = S3Target(client, "again")
    files = render_site(sample_snapshot(), NOW)
    target.publish(files, NOW)
    order = recording(client)
    files["incidents/inc2.html"] = files["incidents/inc2.html"].replace(b"IMAP outage", b"IMAP outage (update)")
    result = target.publish(files, NOW)
    sent = sorted(order)
    assert sent == ["de/index.html", "incidents/inc2.html", "index.html"]
    assert result.written == 3 and result.skipped == len(files) - 3


def test_an_older_state_never_replaces_a_newer_one(client: Any) -> None:
    client.create_bucket(Bucket="race")
    target = S3Target(client, "race")
    newer = render_site(sample_snapshot(), NOW + timedelta(minutes=5))
    target.publish(newer, NOW + timedelta(minutes=5))
    late = target.publish(render_site(sample_snapshot(), NOW), NOW)  # a slow worker finishing late
    assert late.written == 0
    assert client.get_object(Bucket="race", Key="index.html")["Body"].read() == newer["index.html"]


def test_missing_bucket_is_permanent_and_a_dead_endpoint_is_transient(client: Any) -> None:
    files = {"index.html": b"<html></html>"}
    with pytest.raises(Permanent, match="nosuchbucket"):
        S3Target(client, "nosuchbucket").publish(files, NOW)
    dead = s3_client(f"http://127.0.0.1:{free_port()}", "us-east-1", "k", "s", timeout=2)
    with pytest.raises(Transient, match="unreachable"):
        S3Target(dead, "status").publish(files, NOW)


def test_the_channel_publishes_to_s3_from_its_config_entry(endpoint: str, client: Any) -> None:
    from notifier.channels.base import ChannelContext
    from notifier.channels.statuspage import StatuspageChannel
    from notifier.clock import FakeClock
    from notifier.config_loader import parse_settings
    from notifier.templating import TemplateRenderer

    client.create_bucket(Bucket="mirror")
    text = f"""
channels:
  page-s3:
    type: statuspage
    target: s3
    bucket: mirror
    prefix: status/
    endpoint_url: {endpoint}
    access_key_id: ${{S3_KEY}}
    secret_access_key: ${{S3_SECRET}}
"""
    settings = parse_settings(text, env={"S3_KEY": "testing-key", "S3_SECRET": "testing-secret"})
    snap = sample_snapshot()
    context = ChannelContext(page=snap.page, clock=FakeClock(NOW), templates=TemplateRenderer())
    channel = StatuspageChannel("page-s3", settings.channels["page-s3"], context)
    result = channel.publish(snap)
    assert result.target == "s3" and result.written > 20
    obj = client.get_object(Bucket="mirror", Key="status/index.html")
    assert obj["ContentType"] == "text/html; charset=utf-8" and b"IMAP outage" in obj["Body"].read()
    assert "testing-secret" not in repr(channel.describe())
