"""email: every update to each confirmed subscriber of its components, through the mail relay.

One ledger row per update, like every channel; the row's claim and lease make one worker at a time
send it. The first send fixes the notice's recipients (the confirmed subscribers of the incident's
components then, in address order); each message the relay accepts (250) moves a counter in Redis,
so a send that is cut short (the task's time budget, a relay outage, a killed worker) resumes after
the last accepted message instead of starting over. Messages go ``messages_per_connection`` to one
connection; a send that runs out of its time budget ends with ``Transient`` and comes straight back.

Reconcile: a notice whose counter reached its recipient count is posted; otherwise it is sent on
from the counter. The one message that was in ``DATA`` when a worker died cannot be asked about
(SMTP has no lookup), so it is sent again with the same ``Message-ID``: at most one possible
duplicate per crash, which mail clients that collapse equal Message-IDs show once.

Each message: ``Message-ID`` stable per (update, subscriber); ``In-Reply-To``/``References`` to the
incident's earlier updates, so they thread; text and HTML parts from ``templates/email/`` in the
subscriber's language; ``List-Unsubscribe`` + ``List-Unsubscribe-Post`` (RFC 8058) and manage links.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jinja2

from notifier.channels.base import Channel, Rendering
from notifier.channels.mail import Refused, RelayConnection, compose, message_id
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.domain.subscribers import address_hash, manage_token
from notifier.errors import Permanent, Transient
from notifier.statuspage.i18n import label

log = logging.getLogger(__name__)
UNSUBSCRIBE = "\x00UNSUBSCRIBE\x00"  # placeholders: a language's parts are rendered once per notice
MANAGE = "\x00MANAGE\x00"


class EmailSettings(ChannelSettings):
    pass


def links(subscribe_url: str, secret: bytes, address: str) -> tuple[str, str]:
    """The unsubscribe (one-click, RFC 8058) and manage links of one subscriber."""
    token = manage_token(secret, address)
    return f"{subscribe_url}/unsubscribe?token={token}", f"{subscribe_url}/manage?token={token}"


class EmailChannel(Channel):
    type_name = "email"
    settings_model = EmailSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loader = self.context.templates.env.loader
        self.html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                       trim_blocks=True, lstrip_blocks=True)

    def render(self, notice: Notice) -> Rendering:
        subject, text, _ = self._parts(notice, self.language)
        return Rendering(parts=(f"{subject}\n\n{text}",), language=self.language)

    def _parts(self, notice: Notice, language: str) -> tuple[str, str, str]:
        page = self.context.page
        values = dict(incident=notice.incident, update=notice.update, page=page, url=notice.page_url,
                      text=notice.update.text(language, page.language), marker=notice.marker,
                      status=label(language, notice.update.status), title=notice.incident.title(language),
                      unsubscribe_url=UNSUBSCRIBE, manage_url=MANAGE)
        subject = f"[{page.name}] {notice.incident.title(language)} – {label(language, notice.update.status)}"
        text = self.context.templates.render("email", "update", language, **values)
        names = self.context.templates.candidates("email", "update_html", language)
        html = self.html.select_template(names).render(language=language, **values)
        return subject, text, html

    def _setup(self) -> tuple[Any, Any, bytes, str]:
        store, conf, page = self.context.subscribers, self.context.mail, self.context.page
        if conf is None or conf.secret is None or page.subscribe_url is None:
            raise Permanent("e-mail to subscribers needs subscribers.secret and page.subscribe_url (their links); "
                            "set them and run `notifier deliveries retry`")
        return store, conf, conf.secret.get_secret_value().encode(), page.subscribe_url

    def _recipients(self, notice: Notice) -> list[tuple[str, str]]:
        store = self.context.subscribers
        if store is None:  # no Redis (pure unit tests): nobody can have subscribed
            return []
        return store.recipients(notice.id, lambda: self._select(notice, store))

    def _select(self, notice: Notice, store: Any) -> list[tuple[str, str]]:
        components = list(notice.incident.components)
        return [(s.address, s.language) for s in store.all() if s.wants(components)]

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        recipients = self._recipients(notice)
        total = len(recipients)
        if not total:  # nobody to write to: nothing else (secret, relay) is needed
            return Receipt(remote_id="0 recipients", url="", extra={"recipients": "0"})
        store, conf, secret, subscribe_url = self._setup()
        done = store.done(notice.id)
        budget_end = time.monotonic() + max(self.context.task_time_limit / 2 - conf.relay.timeout, 1.0)
        parts: dict[str, tuple[str, str, str]] = {}
        threading = self._thread_ids(notice)
        # The counter of message k is sent to Redis as soon as the relay accepted k, and its answer is
        # waited for while message k+1 is out except for its end-of-data line (RelayConnection.send's
        # ``before_accept``): the round trip overlaps k+1's envelope and body, and still at most one
        # accepted message is ever without its record.
        writer = store.done_writer(notice.id)
        try:
            while done < total:
                with RelayConnection(conf.relay) as conn:
                    for _ in range(conf.relay.messages_per_connection):
                        if done >= total or time.monotonic() > budget_end:
                            break
                        address, language = recipients[done]
                        if language not in parts:
                            parts[language] = self._parts(notice, language)
                        message = self._message(notice, parts[language], address, language, secret,
                                                subscribe_url, conf.relay, threading)
                        try:
                            conn.send(address, message, before_accept=writer.wait)
                        except Refused as exc:  # this address only; the others go on
                            log.warning("notice %s: recipient %s refused: %s", notice.id, address_hash(address),
                                        exc.reason)
                        done += 1
                        writer.wait()  # a refused recipient never reached before_accept
                        writer.start(done)
                if done < total and time.monotonic() > budget_end:
                    raise Transient(f"{done} of {total} mails sent; continuing", retry_after=0)
        finally:
            try:
                writer.wait()
            finally:
                writer.close()
        return Receipt(remote_id=f"{total} recipients", url="", extra={"recipients": str(total)})

    def _thread_ids(self, notice: Notice) -> tuple[str, list[str]]:
        """The update ids this one answers: In-Reply-To the previous, References the first few + the last."""
        earlier = [u.id for u in notice.incident.updates if u.number < notice.update.number and not u.draft]
        return notice.update.id, earlier[:3] + earlier[3:][-7:]

    def _message(
        self, notice: Notice, parts: tuple[str, str, str], address: str, language: str, secret: bytes,
        subscribe_url: str, relay: Any, threading: tuple[str, list[str]],
    ) -> bytes:
        unsubscribe, manage = links(subscribe_url, secret, address)
        subject, text, html = parts
        digest = address_hash(address)
        own, earlier = threading
        ids = [message_id(u, self.name, digest, relay.from_address) for u in earlier]
        return compose(
            relay, self.context.page.name, address, subject,
            text.replace(UNSUBSCRIBE, unsubscribe).replace(MANAGE, manage),
            html.replace(UNSUBSCRIBE, unsubscribe).replace(MANAGE, manage),
            message_id=message_id(own, self.name, digest, relay.from_address), language=language,
            unsubscribe_url=unsubscribe, date=notice.update.created_at.timestamp(),
            in_reply_to=ids[-1] if ids else None, references=ids or None,
        )

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        total = len(self._recipients(notice))
        if not total or self.context.subscribers.done(notice.id) >= total:  # type: ignore[union-attr]
            return Receipt(remote_id=f"{total} recipients", url="", extra={"recipients": str(total)})
        return None  # send() resumes after the last message the relay accepted
