"""E-mail subscribers: 10,000 confirmed subscribers and one update, to a local SMTP server.

    .venv/bin/python bench/subscribers.py [--subscribers 10000] [--no-pipelining]

Prints one table. "email channel" is the shipped path: ``services.delivery.deliver`` on a real Redis
(private redis-server, AOF always) with the email channel: the recipient list fixed in Redis, text and
HTML rendered per language, one message composed per subscriber (its own links, Message-ID and
threading headers), ``messages_per_connection`` (100) per SMTP connection, and a Redis write after every
accepted message (overlapped with the next message, see ``RelayConnection.send``), MAIL/RCPT/DATA
pipelined when the server offers PIPELINING (RFC 2920; it does unless ``--no-pipelining``). Calls repeat
until the row is posted (each ends after its time budget, half of ``task_time_limit`` minus the relay
timeout, 20 s by default; the next call comes after the 0.5 s a task's countdown would wait, counted in
the wall time). The baseline, measured in the same run against the same server, is a bare ``smtplib``
loop sending the same 10,000 already-composed messages over one connection. The SMTP server (aiosmtpd,
counting only) runs in its own process; both counts are checked there. Target (DESIGN.md): at least
half the baseline's speed.
"""

from __future__ import annotations

import argparse
import os
import resource
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifier.bootstrap import build  # noqa: E402
from notifier.config_loader import parse_settings  # noqa: E402
from notifier.domain.subscribers import Subscriber  # noqa: E402
from notifier.services import delivery, incidents  # noqa: E402
from notifier.store.local_redis import LocalRedis, free_port  # noqa: E402

SINK = r"""
import signal, sys, threading
from aiosmtpd.controller import Controller
count = 0
PIPELINING = sys.argv[2] == "1"
lock = threading.Lock()
class H:
    async def handle_DATA(self, server, session, envelope):
        global count
        with lock:
            count += len(envelope.rcpt_tos)
        return "250 OK"
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands off one buffered stream, so it handles pipelined ones; it just does not
        # say so. Real relays (Postfix, Exim, SES, Gmail) do; "--no-pipelining" keeps it unsaid.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:] if PIPELINING else responses
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: print(count, flush=True))
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
c.stop()
"""

CONFIG = """
page: {name: Bench Mail, url: "https://status.example.com/", subscribe_url: "https://notifier.example.com/subscribe"}
redis: {key_prefix: "bench:"}
components: [{id: imap, name: IMAP}, {id: smtp, name: SMTP}]
channels: {mail: {type: email}}
subscribers:
  secret: "${SUB_SECRET}"
  relay: {host: 127.0.0.1, port: %d, security: none, from_address: status@example.com}
"""


class Sink:
    def __init__(self, pipelining: bool) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SINK, str(self.port), "1" if pipelining else "0"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def count(self) -> int:
        self.proc.send_signal(10)  # SIGUSR1: print the count so far
        assert self.proc.stdout is not None
        return int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bare_loop(port: int, messages: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for to, message in messages:
            smtp.sendmail("status@example.com", [to], message)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--no-pipelining", action="store_true", help="the SMTP server does not offer PIPELINING")
    args = parser.parse_args()
    n = args.subscribers
    sink = Sink(pipelining=not args.no_pipelining)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalRedis(Path(tmp) / "redis").start()
        try:
            settings = parse_settings(CONFIG % sink.port, "bench", env={"SUB_SECRET": "bench-secret-0123456789"})
            app = build(settings, redis_url=server.url)
            for i in range(n):
                app.subscribers.save(Subscriber(f"s{i:06}@example.org", "*" if i % 3 else ("imap",),
                                                "de" if i % 4 == 0 else "en", 1.0, 2.0))
            inc = incidents.open_incident(app, name="IMAP down", components={"imap": "major_outage"},
                                          body={"en": "IMAP logins fail.", "de": "IMAP-Anmeldungen schlagen fehl."})
            [row] = app.store.ledger.rows(update_id=inc.updates[0].id)
            before = sink.count()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            calls = 0
            while True:
                calls += 1
                outcome = delivery.deliver(app, row.notice_id)
                if outcome.state == "posted":
                    break
                assert outcome.state in ("retry", "early") and outcome.retry_in is not None, outcome
                time.sleep(outcome.retry_in)  # as the task's countdown would (counted in the wall time)
            ours = time.perf_counter() - start
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            sent = sink.count() - before
            # the same messages, composed once by the channel (not timed), for the baseline
            channel = app.channels["mail"]
            notice = incidents.notice_for(app, inc, inc.updates[0], "mail")
            store = app.subscribers
            recipients = store.recipients(notice.id, lambda: [])  # type: ignore[attr-defined]
            secret = b"bench-secret-0123456789"
            parts = {lang: channel._parts(notice, lang) for lang in ("en", "de")}  # type: ignore[attr-defined]
            threading = channel._thread_ids(notice)  # type: ignore[attr-defined]
            messages = [(a, channel._message(notice, parts[lang], a, lang, secret,  # type: ignore[attr-defined]
                                             settings.page.subscribe_url, settings.subscribers.relay, threading))
                         for a, lang in recipients]
            before = sink.count()
            bare = bare_loop(sink.port, messages)
            bare_sent = sink.count() - before
        finally:
            server.stop()
            sink.stop()
    print(f"{n} subscribers (update to imap: {len(messages)} recipients), one local SMTP server "
          f"({'without' if args.no_pipelining else 'offering'} PIPELINING)")
    print(f"{'path':<44} {'wall s':>8} {'mails/s':>9} {'at server':>10}")
    print(f"{'bare smtplib loop, one connection':<44} {bare:>8.2f} {len(messages) / bare:>9.0f} {bare_sent:>10}")
    print(f"{'email channel (deliver, ' + str(calls) + ' calls)':<44} {ours:>8.2f} {len(messages) / ours:>9.0f} "
          f"{sent:>10}")
    print(f"ratio (channel speed / bare speed): {bare / ours:.2f}  (target >= 0.5)")
    print(f"process max RSS: {rss_before / 1024:.0f} MB before the send, {rss_after / 1024:.0f} MB after "
          f"(pid {os.getpid()}, the channel runs in this process as in a worker)")
    return 0 if sent == bare_sent == len(messages) else 1


if __name__ == "__main__":
    sys.exit(main())
