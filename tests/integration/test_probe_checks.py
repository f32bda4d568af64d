"""Each check against a real loopback server: what it reports when the server is fine, wrong, or gone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from notifier.config.settings import ProbeSettings
from notifier.config_loader import parse_settings
from notifier.probes import checks
from tests.integration.probe_servers import HttpServer, SmtpServer, free_port, imap_server, pop3_server


def probe(line: str, env: dict[str, str] | None = None) -> ProbeSettings:
    settings = parse_settings(f"components: [{{id: c, name: C}}]\nprobes:\n  checks:\n    - {line}\n", "t",
                              env=env or {})
    return settings.probes.checks[0]


CANARY = {"CANARY_USER": "canary", "CANARY_PASSWORD": "s3cret", "WRONG": "nope"}


@pytest.mark.parametrize("make", [imap_server, pop3_server], ids=["imap", "pop3"])
def test_imap_and_pop3_check_the_greeting_and_log_in_with_the_canary(make: Callable[[], Any]) -> None:
    server = make()
    kind = server.protocol
    try:
        good = probe(f'{{name: p, component: c, type: {kind}, target: "{server.target}", timeout: 3, '
                     'username: "${CANARY_USER}", password: "${CANARY_PASSWORD}"}', CANARY)
        result = checks.run(good)
        assert result.ok and "login ok" in result.detail and "canary" in result.facts["banner"]
        bad = probe(f'{{name: p, component: c, type: {kind}, target: "{server.target}", timeout: 3, '
                    'username: "${CANARY_USER}", password: "${WRONG}"}', CANARY)
        result = checks.run(bad)
        assert not result.ok and "nope" not in result.detail  # the failure never echoes the password
        assert server.logins == [("canary", True), ("canary", False)]
    finally:
        server.stop()
    assert not checks.run(good).ok


def test_http_reports_status_keyword_and_latency() -> None:
    http = HttpServer()
    try:
        ok = checks.run(probe(f'{{name: w, component: c, type: http, target: "{http.url}", keyword: Inbox}}'))
        assert ok.ok and ok.facts["status_code"] == "200" and ok.latency_ms is not None
        http.status = 503
        bad = checks.run(probe(f'{{name: w, component: c, type: http, target: "{http.url}"}}'))
        assert not bad.ok and "status 503 not in 200-399" in bad.detail
        http.status = 200
        missing = checks.run(probe(f'{{name: w, component: c, type: http, target: "{http.url}", keyword: Outbox}}'))
        assert not missing.ok and "keyword 'Outbox' missing" in missing.detail
    finally:
        http.stop()


def test_smtp_without_starttls_on_offer_is_down_when_starttls_is_required() -> None:
    smtp = SmtpServer()  # aiosmtpd without a TLS context offers no STARTTLS
    try:
        plain = checks.run(probe(f'{{name: m, component: c, type: smtp, target: "{smtp.target}"}}'))
        assert plain.ok and "EHLO ok" in plain.detail
        tls = checks.run(probe(f'{{name: m, component: c, type: smtp, target: "{smtp.target}", starttls: true}}'))
        assert not tls.ok and tls.detail == "STARTTLS not offered"
    finally:
        smtp.stop()


def test_tcp_and_dns_failures_say_what_happened() -> None:
    gone = checks.run(probe(f'{{name: t, component: c, type: tcp, target: "127.0.0.1:{free_port()}"}}'))
    assert not gone.ok and gone.detail == "connection refused" and gone.latency_ms is None
    wrong = checks.run(probe('{name: d, component: c, type: dns, target: localhost, expect_addresses: [192.0.2.1]}'))
    assert not wrong.ok and "expected 192.0.2.1" in wrong.detail
    nxdomain = checks.run(probe('{name: d, component: c, type: dns, target: no-such-host.invalid}'))
    assert not nxdomain.ok and "does not resolve" in nxdomain.detail


def test_tls_days_left_comes_from_the_certificates_not_after() -> None:
    import ssl

    not_after = "Sep  9 01:46:40 2001 GMT"  # unix time 1,000,000,000: the clock is given, never read
    assert ssl.cert_time_to_seconds(not_after) == 1_000_000_000
    assert checks.tls_days_left({"notAfter": not_after}, 1_000_000_000 - 10 * 86400) == 10.0
    assert checks.tls_days_left({"notAfter": not_after}, 1_000_000_000 + 36 * 3600) == -1.5  # expired
    assert checks.tls_days_left({}, 1_000_000_000) is None  # unverified: not decoded
