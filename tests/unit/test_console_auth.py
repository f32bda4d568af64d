"""Pure parts of the console's sign-in: token comparison, role checks, redirect targets."""

import pytest

from notifier.console.auth import new_token, require_role, tokens_match
from notifier.console.views import _back, _safe_next
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
    assert _safe_next(target) == safe


def test_back_links_only_to_plain_incident_ids():
    assert _back({"back": ["inc4"]}, "retried") == "/console/incidents/inc4?done=retried"
    assert _back({"back": ["../../x"]}, "retried") == "/console/?done=retried"
    assert _back({}, "approved") == "/console/?done=approved"
