"""The pure parts of webhook subscribers: the URL check, the per-receiver key and delivery id, the
stored form, the private-address guard (IP literals only: no DNS), and the Statuspage-shaped body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.channels.hook_target import NotAllowed, check_target
from notifier.channels.subscriber_hooks import payload
from notifier.domain.model import Impact, Incident, IncidentUpdate, Notice
from notifier.domain.subscribers import (
    HOOK_CONFIRM,
    HOOK_MANAGE,
    BadToken,
    WebhookSubscriber,
    delivery_id,
    hook_confirm_token,
    hook_manage_token,
    hook_secret,
    normalise_hook_url,
    verify,
)

KEY = b"k" * 32


@pytest.mark.parametrize(("raw", "expected"), [
    (" HTTPS://Hooks.Example.COM/a/b?x=1#frag ", "https://hooks.example.com/a/b?x=1"),
    ("http://example.com", "http://example.com/"),
    ("http://bücher.de:8080/h", "http://xn--bcher-kva.de:8080/h"),
    ("http://[2001:db8::1]:8443/h", "http://[2001:db8::1]:8443/h"),
    ("javascript:alert(1)", None),
    ("http:///nohost", None),
    ("http://a@b.example/", None),
    ("http://example.com/\r\nX-Injected: 1", None),
    ("http://example.com:0x50/", None),
])
def test_normalise_hook_url(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            normalise_hook_url(raw)
    else:
        assert normalise_hook_url(raw) == expected


@pytest.mark.parametrize(("url", "public"), [
    ("http://93.184.215.14/h", True),
    ("http://[2606:4700::1111]/h", True),
    ("http://127.0.0.1/h", False),
    ("http://192.168.1.1/h", False),
    ("http://100.64.0.1/h", False),  # carrier-grade NAT
    ("http://[fe80::1]/h", False),
    ("http://[fc00::1]/h", False),
    ("http://224.0.0.1/h", False),
])
def test_only_public_targets_unless_allowed(url: str, public: bool) -> None:
    check_target(url, allow_private=True)  # allowed: anything that resolves
    if public:
        check_target(url, allow_private=False)
    else:
        with pytest.raises(NotAllowed):
            check_target(url, allow_private=False)


def test_keys_ids_and_tokens_are_per_receiver_and_stable() -> None:
    a, b = "https://a.example/h", "https://b.example/h"
    assert hook_secret(KEY, a) == hook_secret(KEY, a) != hook_secret(KEY, b) != hook_secret(b"o" * 32, b)
    assert delivery_id("inc1.1", a) == delivery_id("inc1.1", a) != delivery_id("inc1.2", a) != delivery_id("inc1.1", b)
    token = hook_confirm_token(KEY, a, ("imap",), "de", 1000.0)
    assert verify(KEY, token, HOOK_CONFIRM, 1000.0, max_age=60)["a"] == a
    with pytest.raises(BadToken):
        verify(KEY, token, HOOK_CONFIRM, 1100.0, max_age=60)  # expired
    with pytest.raises(BadToken):
        verify(KEY, hook_manage_token(KEY, a), HOOK_CONFIRM, 1000.0)  # an unsubscribe token confirms nothing
    assert verify(KEY, hook_manage_token(KEY, a), HOOK_MANAGE, 1000.0)["a"] == a


def test_stored_form_round_trips() -> None:
    hook = WebhookSubscriber("https://a.example/h", ("imap", "smtp"), "de", 1.5, 2.5, failures=2)
    assert WebhookSubscriber.from_json(hook.url, hook.to_json()) == hook
    assert hook.wants(["smtp"]) and not hook.wants(["webmail"]) and hook.wants([])


def test_payload_has_statuspage_shape() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    first = IncidentUpdate("inc1.1", "inc1", 1, "investigating", {"en": "Down.", "de": "Weg."}, t0,
                           component_statuses={"imap": "major_outage", "smtp": "partial_outage"})
    second = IncidentUpdate("inc1.2", "inc1", 2, "identified", {"en": "Found it."}, t0,
                            component_statuses={"imap": "partial_outage"})
    incident = Incident("inc1", "Mail down", "identified", Impact("major"), t0, components=["imap", "smtp"],
                        updates=[first, second])
    body = payload(Notice(incident, second, "hooks", page_url="http://status.test/incidents/inc1"), "de", "en",
                   "http://n.test/subscribe/webhook/unsubscribe?token=t", 0.0, "http://status.test/")
    assert body["meta"] == {"unsubscribe": "http://n.test/subscribe/webhook/unsubscribe?token=t",
                            "documentation": "http://status.test/", "generated_at": "1970-01-01T00:00:00Z"}
    assert [u["body"] for u in body["incident"]["incident_updates"]] == ["Found it.", "Weg."]  # en fallback
    assert body["incident"]["shortlink"] == "http://status.test/incidents/inc1"
    assert body["component_update"]["old_status"] == "major_outage"
    assert body["component_update"]["new_status"] == "partial_outage"
    assert {c["id"]: c["status"] for c in body["incident"]["components"]} == \
        {"imap": "partial_outage", "smtp": "partial_outage"}
    assert "component" not in payload(Notice(incident, first, "hooks"), "en", "en", "", 0.0)  # two changed
