"""The pure parts of subscriptions: address checks, signed links, who gets an update, the page's form."""

from __future__ import annotations

import dataclasses

import pytest

from notifier.domain.subscribers import (
    ALL,
    CONFIRM,
    MANAGE,
    BadToken,
    Subscriber,
    confirm_token,
    manage_token,
    normalise_address,
    verify,
)
from notifier.statuspage.generator import render_site
from tests.fakes.statuspage_model import NOW, sample_snapshot

KEY = b"k" * 32


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Ana@Example.ORG ", "Ana@example.org"),
    ("a.b+tag@sub.example.co.uk", "a.b+tag@sub.example.co.uk"),
    ("jörg@bücher.de", None),  # a non-ASCII local part: refused
    ("x@bücher.de", "x@xn--bcher-kva.de"),
])
def test_addresses_are_normalised_or_refused(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            normalise_address(raw)
    else:
        assert normalise_address(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "@x.org", "a@", "a@x", "a@x..org", "a@1.2.3.4", "a\n@x.org", "a@x.org\r\nBcc: b@y.org",
    "a;b@x.org", '"q"@x.org', "a@" + "x" * 64 + ".org", ".a@x.org",
])
def test_malformed_addresses_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_address(raw)


def test_a_confirmation_link_expires_and_cannot_be_forged_or_reused_for_another_purpose() -> None:
    token = confirm_token(KEY, "a@x.org", ("imap",), "de", now=1000.0)
    payload = verify(KEY, token, CONFIRM, now=1000.0 + 3600, max_age=7200)
    assert payload["a"] == "a@x.org" and payload["s"] == ["imap"] and payload["l"] == "de"
    with pytest.raises(BadToken, match="expired"):
        verify(KEY, token, CONFIRM, now=1000.0 + 7201, max_age=7200)
    with pytest.raises(BadToken, match="not valid"):
        verify(b"other" * 8, token, CONFIRM, now=1000.0, max_age=7200)
    with pytest.raises(BadToken, match="something else"):
        verify(KEY, token, MANAGE, now=1000.0)
    body, mac = token.split(".")
    with pytest.raises(BadToken):
        verify(KEY, body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B"), CONFIRM, now=1000.0, max_age=7200)


def test_manage_links_do_not_expire() -> None:
    token = manage_token(KEY, "a@x.org")
    assert verify(KEY, token, MANAGE, now=10 ** 10)["a"] == "a@x.org"


@pytest.mark.parametrize(("scope", "components", "wanted"), [
    (ALL, ["imap"], True), (("imap",), ["imap", "smtp"], True), (("smtp",), ["imap"], False),
    (("smtp",), [], True),  # a broadcast names no component: everyone
])
def test_who_gets_an_update(scope, components, wanted) -> None:
    assert Subscriber("a@x.org", scope, "en", 1, 2).wants(components) is wanted


def test_the_page_has_a_form_posting_to_the_notifier_only_when_configured() -> None:
    snap = sample_snapshot(now=NOW)
    plain = render_site(snap, NOW)["index.html"].decode()
    assert "subscribe-form" not in plain and "form-action 'none'" in plain.replace("&#39;", "'")
    snap = dataclasses.replace(snap, page=snap.page.model_copy(update={
        "subscribe_url": "https://notifier.example.net/subscribe"}))
    html = render_site(snap, NOW)["index.html"].decode()
    assert 'action="https://notifier.example.net/subscribe"' in html
    assert "form-action https://notifier.example.net" in html
    assert 'name="components" value="imap"' in html
    german = render_site(snap, NOW)["de/index.html"].decode()
    assert "Abonnieren" in german and '<option value="de" selected>' in german
