"""webhook_subscribers: every update to each confirmed webhook subscriber, Statuspage-style.

Webhook subscribers sign up with a URL on the public endpoint (``POST /subscribe/webhook``) and are
confirmed by a signed challenge (``notifier.services.subscriptions``). Delivery works like the e-mail
channel: one ledger row per update; the first send fixes the notice's recipients (the confirmed
receivers of the incident's components then, in URL order); each finished request moves a counter
in Redis, so a send cut short (the time budget, a killed worker) resumes after the last receiver it
finished. The one request in flight when a worker died is sent again with the same
``X-Notifier-Delivery-Id``, so a receiver that keeps the ids it has seen drops the copy.

Each request: ``POST`` of a JSON body in Statuspage's webhook shape (``meta``, ``page``, ``incident``
with ``incident_updates`` newest first, and ``component`` + ``component_update`` when the update
changed exactly one component), signed like the webhook channel
(``X-Notifier-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``) with the receiver's own key
(``hook_secret``, sent to it in the challenge), ``X-Notifier-Delivery-Id``/``Idempotency-Key``
stable per (update, receiver), no redirects followed, ``subscribers.webhook_timeout`` seconds to
connect and per read. Receivers with private addresses are refused unless
``subscribers.webhook_allow_private``.

A receiver's answer: 2xx is delivered (and clears its failure count); 410 Gone ends the subscription
at once; a temporary failure (refused connection, timeout, 408, 425, 429, 5xx) puts the receiver on the
notice's retry list and the next receiver goes on (one receiver's outage never holds up the others).
When everyone had a first try, the send ends ``Transient`` while the list is not empty, and the ledger's
backoff brings it back to try the list again, up to ``subscribers.webhook_max_failures`` tries per
receiver. Any other answer, or no try taking, counts one failed update; ``webhook_max_failures`` failed
updates in a row end the subscription.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import requests

from notifier.channels.base import Channel, Rendering
from notifier.channels.hook_target import NotAllowed, check_target
from notifier.channels.http import ChannelSession
from notifier.channels.webhook import signature_header
from notifier.config import ChannelSettings
from notifier.domain.model import Incident, IncidentUpdate, Notice, Receipt, to_iso
from notifier.domain.subscribers import address_hash, delivery_id, hook_manage_token, hook_secret
from notifier.errors import Permanent, Transient

log = logging.getLogger(__name__)
DELIVERED, GONE, RETRY, FAILED, SKIPPED = "delivered", "gone", "retry", "failed", "skipped"  # one receiver's answer


class SubscriberHooksSettings(ChannelSettings):
    pass


def payload(notice: Notice, language: str, fallback: str, unsubscribe: str, now: float,
            documentation: str = "") -> dict[str, Any]:
    """Statuspage's webhook body for one update, in ``language`` (``documentation``: the page's URL)."""
    incident, update = notice.incident, notice.update
    updates = [u for u in incident.updates if not u.draft and u.number <= update.number] or [update]
    body: dict[str, Any] = {
        "meta": {"unsubscribe": unsubscribe, "documentation": documentation,
                 "generated_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")},
        "page": {"id": "", "status_indicator": "none" if incident.resolved_at else incident.impact.value,
                 "status_description": incident.title(language)},
        "incident": {
            "id": incident.id, "name": incident.title(language), "status": update.status,
            "impact": incident.impact.value, "kind": incident.kind,
            "created_at": to_iso(incident.created_at), "updated_at": to_iso(update.created_at),
            "resolved_at": to_iso(incident.resolved_at) if incident.resolved_at else None,
            "scheduled_for": to_iso(incident.scheduled_for) if incident.scheduled_for else None,
            "scheduled_until": to_iso(incident.scheduled_until) if incident.scheduled_until else None,
            "shortlink": notice.page_url, "marker": notice.marker,
            "components": [{"id": c, "status": _status_after(incident, update, c)} for c in incident.components],
            "incident_updates": [_update(u, language, fallback) for u in sorted(updates, key=lambda u: -u.number)],
        },
    }
    if len(update.component_statuses) == 1:
        ((component, status),) = update.component_statuses.items()
        body["component"] = {"id": component, "status": status}
        body["component_update"] = {
            "id": f"{update.id}.{component}", "component_id": component, "component_type": "Component",
            "old_status": _status_before(incident, update, component), "new_status": status,
            "created_at": to_iso(update.created_at),
        }
    return body


def _update(u: IncidentUpdate, language: str, fallback: str) -> dict[str, Any]:
    return {"id": u.id, "incident_id": u.incident_id, "status": u.status, "body": u.text(language, fallback),
            "created_at": to_iso(u.created_at), "updated_at": to_iso(u.created_at),
            "display_at": to_iso(u.created_at)}


def _status_before(incident: Incident, update: IncidentUpdate, component: str) -> str:
    for u in sorted(incident.updates, key=lambda u: -u.number):
        if u.number < update.number and not u.draft and component in u.component_statuses:
            return u.component_statuses[component]
    return "operational"


def _status_after(incident: Incident, update: IncidentUpdate, component: str) -> str:
    if component in update.component_statuses:
        return update.component_statuses[component]
    return _status_before(incident, update, component)


class SubscriberHooksChannel(Channel):
    type_name = "webhook_subscribers"
    settings_model = SubscriberHooksSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = ChannelSession()

    def render(self, notice: Notice) -> Rendering:
        text = json.dumps(payload(notice, self.language, self.context.page.language, "", 0.0), sort_keys=True)
        return Rendering(parts=(text,), language=self.language)

    def _setup(self) -> tuple[Any, Any, bytes, str]:
        store, conf, page = self.context.subscribers, self.context.mail, self.context.page
        if store is None or conf is None or conf.secret is None or page.subscribe_url is None:
            raise Permanent("webhook subscribers need Redis, subscribers.secret and page.subscribe_url; "
                            "set them and run `notifier deliveries retry`")
        return store, conf, conf.secret.get_secret_value().encode(), page.subscribe_url

    def _recipients(self, notice: Notice) -> list[tuple[str, str]]:
        store = self.context.subscribers
        if store is None:
            return []
        components = list(notice.incident.components)
        return store.recipients(notice.id, lambda: [(h.url, h.language) for h in store.hooks()
                                                     if h.wants(components)])

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        recipients = self._recipients(notice)
        total = len(recipients)
        if not total:
            return Receipt(remote_id="0 recipients", url="", extra={"recipients": "0"})
        store, conf, secret, subscribe_url = self._setup()
        done = store.done(notice.id)
        timeout = min(conf.webhook_timeout, self.context.http_timeout)
        budget_end = time.monotonic() + max(self.context.task_time_limit / 2 - 2 * timeout, 1.0)
        languages = dict(recipients)
        # once everyone had a first try, a later call (after the ledger's backoff) tries the waiting ones again
        waiting_before = store.hook_retries(notice.id) if done >= total else {}
        for url, attempts in sorted(waiting_before.items()):
            if time.monotonic() > budget_end:
                # not at once: the ones tried in this call would get their next try without a pause
                raise Transient("receivers to try again; continuing after a pause", retry_after=None)
            answer = self._attempt(notice, url, languages.get(url, self.language), secret, subscribe_url, conf,
                                   timeout)
            again = answer == RETRY and attempts + 1 < conf.webhook_max_failures
            store.set_hook_retry(notice.id, url, attempts + 1 if again else None)
            if not again:
                self._settle(store, notice, url, FAILED if answer == RETRY else answer, conf)
        while done < total:
            if time.monotonic() > budget_end:
                raise Transient(f"{done} of {total} receivers done; continuing", retry_after=0)
            url, language = recipients[done]
            answer = self._attempt(notice, url, language, secret, subscribe_url, conf, timeout)
            if answer == RETRY and conf.webhook_max_failures > 1:
                store.set_hook_retry(notice.id, url, 1)  # written before the counter: a crash loses neither
            else:
                self._settle(store, notice, url, FAILED if answer == RETRY else answer, conf)
            done += 1
            store.set_done(notice.id, done)
        waiting = len(store.hook_retries(notice.id))
        if waiting:  # the ledger's backoff decides when; everyone else has it already
            raise Transient(f"{waiting} of {total} receivers failed for now; trying them again", retry_after=None)
        return Receipt(remote_id=f"{total} recipients", url="", extra={"recipients": str(total)})

    def _attempt(self, notice: Notice, url: str, language: str, secret: bytes, subscribe_url: str, conf: Any,
                 timeout: float) -> str:
        if self.context.subscribers.get_hook(url) is None:  # type: ignore[union-attr]
            return SKIPPED  # unsubscribed (or ended) since the recipients were fixed
        return self._deliver(notice, url, language, secret, subscribe_url, conf, timeout)

    def _settle(self, store: Any, notice: Notice, url: str, answer: str, conf: Any) -> None:
        """A receiver's final answer for this notice: count it (and end the subscription if it must)."""
        if answer == SKIPPED:
            return
        if answer == GONE:
            store.delete_hook(url)
            log.warning("notice %s: receiver %s answered 410 Gone: unsubscribed", notice.id, address_hash(url))
        elif store.hook_outcome(url, answer == DELIVERED, conf.webhook_max_failures) == "removed":
            log.warning("notice %s: receiver %s failed %d times in a row: unsubscribed", notice.id,
                        address_hash(url), conf.webhook_max_failures)

    def _deliver(self, notice: Notice, url: str, language: str, secret: bytes, subscribe_url: str, conf: Any,
                 timeout: float) -> str:
        """One request to one receiver: DELIVERED, GONE (410), RETRY (the receiver says or shows it is
        down for now: connection refused, timeout, 408, 425, 429, 5xx) or FAILED (any other answer)."""
        try:
            check_target(url, conf.webhook_allow_private)
        except NotAllowed as exc:
            log.warning("notice %s: receiver %s refused: %s", notice.id, address_hash(url), exc)
            return FAILED
        now = self.context.clock.timestamp()
        unsubscribe = f"{subscribe_url}/webhook/unsubscribe?token={hook_manage_token(secret, url)}"
        page = self.context.page
        body = json.dumps(payload(notice, language, page.language, unsubscribe, now, page.url),
                          ensure_ascii=False, sort_keys=True).encode()
        stable = delivery_id(notice.update.id, url)
        headers = {"Content-Type": "application/json", "User-Agent": "outage-notifier",
                   "X-Notifier-Delivery-Id": stable, "Idempotency-Key": stable,
                   "X-Notifier-Signature": signature_header(hook_secret(secret, url), body, int(now))}
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=(timeout, timeout),
                                         allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            log.warning("notice %s: receiver %s: %s", notice.id, address_hash(url), exc.__class__.__name__)
            return RETRY
        response.close()  # the answer's body is not needed (and a huge one is never read)
        status = response.status_code
        if 200 <= status < 300:
            return DELIVERED
        log.warning("notice %s: receiver %s answered HTTP %d", notice.id, address_hash(url), status)
        if status == 410:
            return GONE
        return RETRY if status in (408, 425, 429) or status >= 500 else FAILED

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        total = len(self._recipients(notice))
        store = self.context.subscribers
        if not total or (store.done(notice.id) >= total and not store.hook_retries(notice.id)):  # type: ignore[union-attr]
            return Receipt(remote_id=f"{total} recipients", url="", extra={"recipients": str(total)})
        return None  # send() resumes after the last receiver it finished, and retries the ones waiting


def post_challenge(url: str, challenge: dict[str, Any], key: bytes, timeout: float, now: float) -> str | None:
    """POST the sign-up challenge to ``url``, signed with the receiver's key; the first 4 KiB of a 2xx
    answer (a receiver may echo the challenge to confirm at once), or None when it did not take it."""
    body = json.dumps(challenge, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "outage-notifier",
               "X-Notifier-Signature": signature_header(key, body, int(now))}
    try:
        with requests.post(url, data=body, headers=headers, timeout=(timeout, timeout), allow_redirects=False,
                           stream=True) as response:
            if not 200 <= response.status_code < 300:
                return None
            return response.raw.read(4096, decode_content=True).decode("utf-8", "replace")
    except requests.RequestException:
        return None
