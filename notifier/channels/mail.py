"""The mail relay: one SMTP connection that carries many messages, and the messages themselves.

Errors are mapped here, in one place, to the project's tree. What matters is *when* a failure
happened: before ``DATA`` the relay has provably not taken the message (``Transient``, or
``Refused`` for one recipient the relay will never take); during ``DATA`` (the body and its final
dot are out, the 250 has not been read) it may have, and that is ``OutcomeUnknown``.
SMTP has no way to ask a relay afterwards whether it took a message, so that one message is the
honest limit of "never twice" for e-mail (README "Subscribers").
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.header import Header
from email.utils import formatdate
from types import TracebackType

from notifier.config.settings import RelaySettings
from notifier.errors import DeliveryError, OutcomeUnknown, Permanent, Transient

_DOT = re.compile(rb"(?m)^\.")  # dot-stuffing (RFC 5321 4.5.2), as smtplib does


class Refused(Permanent):
    """The relay will never take this recipient (5xx on RCPT); the other recipients go on."""


def classify_error(exc: BaseException, during_data: bool) -> DeliveryError:
    """The one place where smtplib's and the socket's errors become our error tree."""
    if during_data:
        if isinstance(exc, smtplib.SMTPDataError):  # the relay answered: no ambiguity
            if 400 <= exc.smtp_code < 500:
                return Transient(f"relay deferred the message: {exc.smtp_code}")
            return Permanent(f"relay rejected the message: {exc.smtp_code} {_text(exc.smtp_error)}")
        return OutcomeUnknown(f"the connection failed after the message was sent ({exc.__class__.__name__}); "
                              "the relay may have accepted it")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Permanent(f"the relay refused our credentials ({exc.smtp_code}); check "
                         "subscribers.relay.username/password")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Permanent(f"the relay does not support {exc}; check subscribers.relay.security")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
        if 400 <= code < 500:
            return Transient(f"relay deferred the recipient: {code}")
        return Refused(f"relay refused the recipient: {code}")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        if 400 <= exc.smtp_code < 500:
            return Transient(f"relay deferred the sender: {exc.smtp_code}")
        return Permanent(f"relay refused subscribers.relay.from_address: {exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPResponseException):
        if 400 <= exc.smtp_code < 500:
            return Transient(f"relay answered {exc.smtp_code}")
        return Permanent(f"relay answered {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Permanent(f"TLS with the relay failed ({exc.__class__.__name__}); check subscribers.relay.security "
                         "and its certificate")
    # refused, reset, timed out, unresolvable: nothing of this message reached the relay
    return Transient(f"relay unreachable ({exc.__class__.__name__})", retry_after=None)


def _text(value: bytes | str) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)[:200]


class RelayConnection:
    """``with RelayConnection(relay) as conn: conn.send(to, message)`` for many messages."""

    def __init__(self, relay: RelaySettings) -> None:
        self.relay = relay
        self.smtp: smtplib.SMTP | None = None
        self.pipelining = False
        self.in_data = False  # DATA accepted (354), the end of data not yet sent
        self.sender = smtplib.quoteaddr(relay.from_address)

    def __enter__(self) -> RelayConnection:
        relay = self.relay
        context = _tls_context(relay.verify_tls) if relay.security != "none" else None
        try:
            if relay.security == "tls":
                self.smtp = smtplib.SMTP_SSL(relay.host, relay.port, timeout=relay.timeout, context=context)
            else:
                self.smtp = smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout)
            # the end-of-data line is a write of its own (send below): with Nagle it would wait for the
            # ACK of the body, which the relay delays (40 ms a message on Linux)
            if self.smtp.sock is not None:
                self.smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.smtp.ehlo()
            if relay.security == "starttls":
                self.smtp.starttls(context=context)
                self.smtp.ehlo()
            if relay.username is not None and relay.password is not None:
                self.smtp.login(relay.username.get_secret_value(), relay.password.get_secret_value())
            self.pipelining = self.smtp.has_extn("pipelining")
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise classify_error(exc, during_data=False) from exc
        return self

    def send(self, to: str, message: bytes, before_accept: Callable[[], object] | None = None) -> None:
        """One message to one recipient. Raises Refused (this recipient only), Transient, Permanent or
        OutcomeUnknown; after Refused the connection is ready for the next message.

        With a relay that offers PIPELINING (RFC 2920; Postfix, Exim and the big providers do) MAIL, RCPT
        and DATA go out together and cost one round trip, otherwise one each. The body then goes out
        without its end-of-data line: a relay cannot take a message before that line, so
        ``before_accept`` runs there (the e-mail channel waits for the previous message's record in
        Redis), and only then the final dot is sent. If ``before_accept`` raises, the connection is
        dropped without ending the message, so the relay discards it."""
        smtp = self.smtp
        if smtp is None:  # dropped after a relay misbehaved (below), or never opened
            raise Transient("the relay connection was closed; reconnecting", retry_after=0)
        body = _DOT.sub(b"..", message)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        try:
            if self.pipelining:
                smtp.send(f"MAIL FROM:{self.sender}\r\nRCPT TO:{smtplib.quoteaddr(to)}\r\nDATA\r\n".encode())
                (mail, mail_reply), (rcpt, rcpt_reply), (data, data_reply) = (smtp.getreply() for _ in range(3))
            else:
                mail, mail_reply = smtp.mail(self.relay.from_address)
                rcpt, rcpt_reply = smtp.rcpt(to) if mail == 250 else (503, b"")
                data, data_reply = smtp.docmd("DATA") if rcpt in (250, 251) else (503, b"")
            if data == 354:
                self.in_data = True
            if mail != 250:
                raise smtplib.SMTPSenderRefused(mail, mail_reply, self.relay.from_address)
            if rcpt not in (250, 251):
                if self.in_data:  # a relay that opened DATA with no recipient: never end that message
                    self.close()
                else:
                    smtp.rset()
                raise smtplib.SMTPRecipientsRefused({to: (rcpt, rcpt_reply)})
            if data != 354:
                raise smtplib.SMTPDataError(data, data_reply)
            smtp.send(body)
        except (smtplib.SMTPException, OSError) as exc:
            raise classify_error(exc, during_data=False) from exc  # no end of data went out: not taken
        if before_accept is not None:
            before_accept()
        try:
            smtp.send(b".\r\n")
            self.in_data = False
            code, reply = smtp.getreply()
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise classify_error(exc, during_data=True) from exc
        if code != 250:
            raise classify_error(smtplib.SMTPDataError(code, reply), during_data=True)

    def close(self) -> None:
        if self.smtp is not None:
            if self.in_data:  # a message without its end: drop the connection, QUIT would become its text
                self.smtp.close()
            else:
                try:
                    self.smtp.quit()
                except (smtplib.SMTPException, OSError):
                    self.smtp.close()
            self.smtp = None
            self.in_data = False

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@functools.lru_cache(maxsize=2)
def _tls_context(verify: bool) -> ssl.SSLContext:
    """One per process (loading the CA store costs tens of ms; a send opens a connection per 100 mails)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def compose(
    relay: RelaySettings, sender_name: str, to: str, subject: str, text: str, html: str | None, *,
    message_id: str, language: str, unsubscribe_url: str, date: float,
    in_reply_to: str | None = None, references: list[str] | None = None,
) -> bytes:
    """One message with every header a list mail needs (RFC 2369, RFC 8058 one-click unsubscribe).

    Written out directly rather than through ``email.message.EmailMessage``: its header registry made
    composing cost about ten times the SMTP exchange (bench/subscribers.py). The bodies are
    quoted-printable (so the ``=_`` boundary can never occur in them); the addresses are ASCII
    (``normalise_address``); user text in headers is stripped of line breaks and RFC 2047-encoded.
    """
    headers = [
        f"From: {_phrase(relay.from_name or sender_name)} <{relay.from_address}>",
        f"To: {to}",
        f"Subject: {_header_text(subject)}",
        f"Date: {formatdate(date)}",
        f"Message-ID: {message_id}",
    ]
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    if references:
        headers.append("References: " + "\r\n ".join(references))
    headers += [
        f"List-Unsubscribe: <{unsubscribe_url}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        f"Content-Language: {language}",
    ]
    if html is None:
        headers += ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable"]
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + _qp(text)
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = ("\r\n".join(headers) + "\r\n\r\n").encode()
    part = (f"--{boundary}\r\nContent-Type: text/%s; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    return b"".join((head, (part % "plain").encode(), _qp(text), b"\r\n", (part % "html").encode(), _qp(html),
                     f"\r\n--{boundary}--\r\n".encode()))


def _qp(text: str) -> bytes:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return binascii.b2a_qp("\r\n".join(lines).encode("utf-8"), istext=True).rstrip(b"\r\n") + b"\r\n"


@functools.lru_cache(maxsize=256)  # one subject per language and update: encode it once, not per mail
def _header_text(value: str) -> str:
    value = " ".join(value.split())  # no CR/LF (header injection), no folding surprises
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=998).encode(linesep="\r\n")


def _phrase(value: str) -> str:
    """A display name: as it is when plain, quoted when ASCII with specials, RFC 2047 otherwise."""
    value = " ".join(value.split())
    if not value.isascii():
        return _header_text(value)
    if all(c.isalnum() or c == " " for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def message_id(update_id: str, channel: str, address_digest: str, from_address: str) -> str:
    """Stable per (update, channel, subscriber): a re-sent message carries the same id."""
    domain = from_address.rpartition("@")[2]
    left = f"{update_id}.{channel}.{address_digest}"
    safe = "".join(c if c.isalnum() or c in ".-_" else "-" for c in left)
    return f"<{safe}@{domain}>"
