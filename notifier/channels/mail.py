"""The mail relay: one SMTP connection that carries many messages, and the messages themselves.

Errors are mapped here, in one place, to the project's tree. What matters is *when* a failure
happened: before ``DATA`` the relay has provably not taken the message (``Transient``, or
``Refused`` for one recipient the relay will never take); during ``DATA`` (the body and its final
dot are out, the 250 has not been read) it may have, and that is ``OutcomeUnknown``.
SMTP has no way to ask a relay afterwards whether it took a message, so that one message is the
honest limit of "never twice" for e-mail (README "Subscribers").
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, formatdate
from types import TracebackType

from notifier.config.settings import RelaySettings
from notifier.errors import DeliveryError, OutcomeUnknown, Permanent, Transient

# SMTP's own line limit (998) rather than 78: a long List-Unsubscribe URL would otherwise be folded into
# RFC 2047 encoded words, which mail clients do not decode back into a URL
POLICY = SMTP_POLICY.clone(max_line_length=998)


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

    def __enter__(self) -> RelayConnection:
        relay = self.relay
        context = ssl.create_default_context()
        if not relay.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            if relay.security == "tls":
                self.smtp = smtplib.SMTP_SSL(relay.host, relay.port, timeout=relay.timeout, context=context)
            else:
                self.smtp = smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout)
            self.smtp.ehlo()
            if relay.security == "starttls":
                self.smtp.starttls(context=context)
                self.smtp.ehlo()
            if relay.username is not None and relay.password is not None:
                self.smtp.login(relay.username.get_secret_value(), relay.password.get_secret_value())
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise classify_error(exc, during_data=False) from exc
        return self

    def send(self, to: str, message: bytes) -> None:
        """One message to one recipient. Raises Refused (this recipient only), Transient, Permanent or
        OutcomeUnknown; after Refused the connection is ready for the next message."""
        smtp = self.smtp
        assert smtp is not None, "use RelayConnection as a context manager"
        try:
            code, reply = smtp.mail(self.relay.from_address)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self.relay.from_address)
            code, reply = smtp.rcpt(to)
            if code not in (250, 251):
                smtp.rset()
                raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
        except (smtplib.SMTPException, OSError) as exc:
            raise classify_error(exc, during_data=False) from exc
        try:
            code, reply = smtp.data(message)
        except smtplib.SMTPDataError as exc:
            raise classify_error(exc, during_data=True) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise classify_error(exc, during_data=True) from exc
        if code != 250:
            raise classify_error(smtplib.SMTPDataError(code, reply), during_data=True)

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def compose(
    relay: RelaySettings, sender_name: str, to: str, subject: str, text: str, html: str | None, *,
    message_id: str, language: str, unsubscribe_url: str, date: float,
    in_reply_to: str | None = None, references: list[str] | None = None,
) -> bytes:
    """One message with every header a list mail needs (RFC 2369, RFC 8058 one-click unsubscribe)."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = formataddr((relay.from_name or sender_name, relay.from_address))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(date)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    msg["Content-Language"] = language  # after the content: set_content replaces the Content-* headers
    return msg.as_bytes()


def message_id(update_id: str, channel: str, address_digest: str, from_address: str) -> str:
    """Stable per (update, channel, subscriber): a re-sent message carries the same id."""
    domain = from_address.rpartition("@")[2]
    left = f"{update_id}.{channel}.{address_digest}"
    safe = "".join(c if c.isalnum() or c in ".-_" else "-" for c in left)
    return f"<{safe}@{domain}>"
