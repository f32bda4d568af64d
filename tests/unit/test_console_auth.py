"""Pure parts of the console's sign-in: token comparison, role checks, redirect targets."""

import pytest

from notifier.console.auth import new_token, require_role, tokens_match
from notifier.console.redirects import back_to, safe_next
from notifier.staff import StaffMember


@pytest.mark.parametrize(
    ("expected", "presented", "ok"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "ab", False),
        ("abc", "", False),
        ("abc", None, False),
        ("", "", False),  # a session without a token must never accept an empty field
        (None, None, False),
        ("äöü", "äöü", True),
    ],
)
def test_tokens_match(expected, presented, ok):
    assert tokens_match(expected, presented) is ok


def test_new_tokens_are_long_and_distinct():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 40 for t in tokens)


@pytest.mark.parametrize(
    ("role", "needed", "ok"),
    [
        ("viewer", "viewer", True),
        ("viewer", "editor", False),
        ("viewer", "publisher", False),
        ("editor", "editor", True),
        ("editor", "publisher", False),
        ("publisher", "viewer", True),
        ("publisher", "publisher", True),
        ("intruder", "viewer", False),  # a tampered session role is worth nothing
    ],
)
def test_require_role(role, needed, ok):
    assert require_role(StaffMember("x", role), needed) is ok


def test_require_role_needs_a_member_and_a_known_role():
    assert require_role(None, "viewer") is False
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        require_role(StaffMember("x", "publisher"), "admin")


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/console/incidents/inc1", "/console/incidents/inc1"),
        ("/console/compose?kind=update", "/console/compose?kind=update"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/console/\\evil", "/console/"),
        ("/metrics", "/console/"),
        ("", "/console/"),
        (None, "/console/"),
    ],
)
def test_safe_next_only_stays_inside_the_console(target, safe):
    assert safe_next(target) == safe


def test_back_links_only_to_plain_incident_ids():
    assert back_to({"back": ["inc4"]}, "retried") == "/console/incidents/inc4?done=retried"
    assert back_to({"back": ["../../x"]}, "retried") == "/console/?done=retried"
    assert back_to({}, "approved") == "/console/?done=approved"


def test_a_session_stays_valid_only_while_its_token_is_configured():
    from notifier.config_loader import parse_settings
    from notifier.console.auth import still_valid, token_fingerprint

    text = 'staff: {tokens: [{name: Pia, token: "${A}", role: publisher}, {name: Ed, token: "${B}", role: editor}]}'
    settings = parse_settings(text, "t", {"A": "token-a", "B": "token-b"})
    pia = StaffMember("Pia", "publisher")
    assert still_valid(settings, pia, token_fingerprint("token-a")) == pia
    assert still_valid(settings, pia, token_fingerprint("token-b")) is None  # another person's token
    assert still_valid(settings, pia, token_fingerprint("token-old")) is None  # revoked
    assert still_valid(settings, pia, "") is None  # a session from before fingerprints
    demoted = parse_settings(text.replace("publisher", "viewer"), "t", {"A": "token-a", "B": "token-b"})
    assert still_valid(demoted, pia, token_fingerprint("token-a")) == StaffMember("Pia", "viewer")
    assert token_fingerprint("token-a") != "token-a" and len(token_fingerprint("token-a")) == 64
