"""The network checks: one function per probe type, each returning a ``verdict.Result`` and never raising.

Standard library only (http.client, ssl, socket, smtplib, imaplib, poplib), so one thread per running
check is all a check costs. ``timeout`` bounds each network operation (connect, each read), and a run
makes a handful of them. ``now`` (unix seconds, the app clock) is only used for the days a TLS
certificate has left.
"""

from __future__ import annotations

import contextlib
import http.client
import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from notifier.config.settings import ProbeSettings
from notifier.probes.verdict import Result

BODY_LIMIT = 1 << 20  # read at most 1 MiB of an HTTP body (the keyword must be in it)
USER_AGENT = "outage-notifier-probe/1"


def run(probe: ProbeSettings, now: float | None = None) -> Result:
    """Run ``probe`` once. Any failure becomes ``Result(ok=False, detail=...)``, never an exception."""
    check = CHECKS[probe.type]
    started = time.monotonic()
    try:
        return check(probe, time.time() if now is None else now, started)
    except (OSError, ssl.SSLError, http.client.HTTPException, smtplib.SMTPException, imaplib.IMAP4.error,
            poplib.error_proto, UnicodeError, ValueError) as exc:
        return Result(False, None, _describe(exc), {"error": type(exc).__name__})


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _tls_context(probe: ProbeSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not probe.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_days_left(cert: dict[str, object] | None, now: float) -> float | None:
    """Days until the peer certificate's notAfter (None when the cert was not verified, so not decoded)."""
    not_after = (cert or {}).get("notAfter")
    if not isinstance(not_after, str):
        return None
    return round((ssl.cert_time_to_seconds(not_after) - now) / 86400, 1)


def check_http(probe: ProbeSettings, now: float, started: float) -> Result:
    url = urlsplit(probe.target)
    host = url.hostname or ""
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(host, url.port or 443, timeout=probe.timeout,
                                           context=_tls_context(probe))
    else:
        conn = http.client.HTTPConnection(host, url.port or 80, timeout=probe.timeout)
    facts: dict[str, str] = {}
    try:
        conn.connect()
        days = None
        if isinstance(conn.sock, ssl.SSLSocket):
            days = tls_days_left(conn.sock.getpeercert(), now)  # type: ignore[arg-type]
            if days is not None:
                facts["tls_days_left"] = f"{days:g}"
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT)
    finally:
        conn.close()
    latency = _ms(started)
    facts["status_code"] = str(resp.status)
    parts = [f"HTTP {resp.status}", f"{latency:.0f} ms"]
    if days is not None:
        parts.append(f"TLS {days:g} days left")
    problems = []
    wanted = probe.expect_status or list(range(200, 400))
    if resp.status not in wanted:
        problems.append(f"status {resp.status} not in {_codes(probe.expect_status)}")
    if probe.keyword is not None and probe.keyword not in body.decode("utf-8", "replace"):
        problems.append(f"keyword {probe.keyword!r} missing")
    if probe.tls_min_days is not None and days is not None and days < probe.tls_min_days:
        problems.append(f"certificate expires in {days:g} days (< {probe.tls_min_days:g})")
    detail = ", ".join(parts) + ("; " + "; ".join(problems) if problems else "")
    return Result(not problems, latency, detail, facts)


def _codes(codes: list[int]) -> str:
    return ", ".join(map(str, codes)) if codes else "200-399"


def check_tcp(probe: ProbeSettings, now: float, started: float) -> Result:
    host, port = probe.host_port()
    with socket.create_connection((host, port or 0), timeout=probe.timeout):
        latency = _ms(started)
    return Result(True, latency, f"connected in {latency:.0f} ms")


def check_smtp(probe: ProbeSettings, now: float, started: float) -> Result:
    host, port = probe.host_port()
    client = (smtplib.SMTP_SSL(timeout=probe.timeout, context=_tls_context(probe)) if probe.tls
              else smtplib.SMTP(timeout=probe.timeout))
    try:
        code, banner = client.connect(host, port or 25)
        facts = {"banner": banner.decode("utf-8", "replace")[:200]}
        if code != 220:
            return Result(False, _ms(started), f"greeting {code} {facts['banner']}", facts)
        code, _ = client.ehlo("outage-notifier.invalid")
        if code != 250:
            return Result(False, _ms(started), f"EHLO answered {code}", facts)
        if probe.starttls:
            if not client.has_extn("starttls"):
                return Result(False, _ms(started), "STARTTLS not offered", facts)
            client.starttls(context=_tls_context(probe))
            code, _ = client.ehlo("outage-notifier.invalid")
            if code != 250:
                return Result(False, _ms(started), f"EHLO after STARTTLS answered {code}", facts)
            facts["tls"] = "starttls"
        latency = _ms(started)
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
    finally:
        client.close()
    return Result(True, latency, f"220 {facts['banner'][:60]}, EHLO ok{', STARTTLS ok' if probe.starttls else ''}, "
                                 f"{latency:.0f} ms", facts)


def check_imap(probe: ProbeSettings, now: float, started: float) -> Result:
    host, port = probe.host_port()
    client: imaplib.IMAP4
    if probe.tls:
        client = imaplib.IMAP4_SSL(host, port or 993, ssl_context=_tls_context(probe), timeout=probe.timeout)
    else:
        client = imaplib.IMAP4(host, port or 143, timeout=probe.timeout)
    try:
        banner = client.welcome.decode("utf-8", "replace")[:200]
        steps = ["greeting ok"]
        if probe.starttls:
            client.starttls(ssl_context=_tls_context(probe))
            steps.append("STARTTLS ok")
        if probe.username is not None and probe.password is not None:
            client.login(probe.username.get_secret_value(), probe.password.get_secret_value())
            steps.append("login ok")
        latency = _ms(started)
        client.logout()
    finally:
        with contextlib.suppress(OSError):
            client.shutdown()
    return Result(True, latency, f"{', '.join(steps)}, {latency:.0f} ms", {"banner": banner})


def check_pop3(probe: ProbeSettings, now: float, started: float) -> Result:
    host, port = probe.host_port()
    client: poplib.POP3
    if probe.tls:
        client = poplib.POP3_SSL(host, port or 995, timeout=probe.timeout, context=_tls_context(probe))
    else:
        client = poplib.POP3(host, port or 110, timeout=probe.timeout)
    try:
        banner = client.getwelcome().decode("utf-8", "replace")[:200]
        steps = ["greeting ok"]
        if probe.starttls:
            client.stls(context=_tls_context(probe))
            steps.append("STLS ok")
        if probe.username is not None and probe.password is not None:
            client.user(probe.username.get_secret_value())
            client.pass_(probe.password.get_secret_value())
            steps.append("login ok")
        latency = _ms(started)
        client.quit()
    finally:
        client.close()
    return Result(True, latency, f"{', '.join(steps)}, {latency:.0f} ms", {"banner": banner})


def check_dns(probe: ProbeSettings, now: float, started: float) -> Result:
    infos = socket.getaddrinfo(probe.target, None, proto=socket.IPPROTO_TCP)
    latency = _ms(started)
    addresses = sorted({str(info[4][0]) for info in infos})
    facts = {"addresses": " ".join(addresses)}
    if probe.expect_addresses and not set(addresses) & set(probe.expect_addresses):
        return Result(False, latency, f"resolves to {', '.join(addresses)}, expected "
                                      f"{', '.join(probe.expect_addresses)}", facts)
    return Result(True, latency, f"resolves to {', '.join(addresses)} in {latency:.0f} ms", facts)


Check = Callable[[ProbeSettings, float, float], Result]
CHECKS: dict[str, Check] = {
    "http": check_http,
    "tcp": check_tcp,
    "smtp": check_smtp,
    "imap": check_imap,
    "pop3": check_pop3,
    "dns": check_dns,
}
