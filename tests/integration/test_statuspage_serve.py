"""`notifier statuspage serve` as a user runs it: a subprocess serving a directory target over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from tests.fakes.statuspage_model import NOW, sample_snapshot
from tests.support import stop_process

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def test_serve_waits_for_the_first_publish_then_serves_with_content_types(tmp_path: Path) -> None:
    site = tmp_path / "site"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifier", "statuspage", "serve", "--port", str(port), "--dir", str(site)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        line = proc.stdout.readline().decode() if proc.stdout else ""
        assert f"serving {site} on http://127.0.0.1:{port}/" in line, line
        base = f"http://127.0.0.1:{port}/"
        assert get(base + "index.html")[0] == 404  # nothing published yet, but the server keeps running
        files = render_site(sample_snapshot(), NOW)
        DirectoryTarget(site).publish(files, NOW)
        status, ctype, body = get(base + "index.html")
        assert (status, ctype, body) == (200, "text/html; charset=utf-8", files["index.html"])
        assert get(base + "api/v2/summary.json")[1] == "application/json; charset=utf-8"
        assert get(base + "history.atom")[1] == "application/atom+xml; charset=utf-8"
        assert get(base + "static/style.css")[1] == "text/css; charset=utf-8"
        assert proc.poll() is None
    finally:
        stop_process(proc)
