"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepted, for the subscriber tests.

``SmtpSink().messages`` holds ``(recipient, parsed message)`` in arrival order; ``by_recipient`` groups
them. ``sessions`` counts connections, so a test can see that one connection carried many messages.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections import defaultdict
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from notifier.store.local_redis import free_port


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self.sink.lock:
            self.sink.raw.append(raw)
            for rcpt in envelope.rcpt_tos:
                self.sink.messages.append((rcpt, message))  # type: ignore[arg-type]
        return "250 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        with self.sink.lock:
            self.sink.sessions += 1
        session.host_name = hostname
        if self.sink.pipelining:  # aiosmtpd handles pipelined commands (one buffered stream) but never says so
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class SmtpSink:
    """``pipelining``: offer PIPELINING (RFC 2920) in the EHLO answer, as real relays do; ``refuse``: addresses
    answered 550 at RCPT."""

    def __init__(self, pipelining: bool = True) -> None:
        self.pipelining = pipelining
        self.refuse: set[str] = set()
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[tuple[str, EmailMessage]] = []
        self.raw: list[bytes] = []  # as received, headers unparsed
        self.sessions = 0
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.raw.clear()
            self.sessions = 0

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if rcpt == address]

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        out: dict[str, list[EmailMessage]] = defaultdict(list)
        with self.lock:
            for rcpt, message in self.messages:
                out[rcpt].append(message)
        return out
