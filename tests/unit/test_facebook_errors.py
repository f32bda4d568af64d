"""Facebook: Graph error codes (not HTTP statuses) decide; usage headers say how long to wait."""

from __future__ import annotations

import json

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from notifier.channels.facebook import DuplicatePost, GraphError, classify_error, regain_after
from notifier.errors import OutcomeUnknown, Permanent, Transient


def graph(status: int, code: int, message: str = "msg", subcode: int | None = None,
          usage_minutes: int | None = None) -> GraphError:
    resp = requests.Response()
    resp.status_code = status
    err = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Trace1"}
    if subcode:
        err["error_subcode"] = subcode
    resp._content = json.dumps({"error": err}).encode()
    if usage_minutes is not None:
        resp.headers["X-Business-Use-Case-Usage"] = json.dumps(
            {"104": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": usage_minutes}]})
    return GraphError(resp)


@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 613, 80001])
def test_transient_codes_wait_for_the_usage_header(code: int) -> None:
    err = classify_error(graph(400, code, usage_minutes=7), writing=True)
    assert type(err) is Transient
    assert err.retry_after == 7 * 60
    err = classify_error(graph(500 if code in (1, 2) else 400, code), writing=True)
    assert type(err) is Transient and err.retry_after == 60


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (190, ["access token has expired or is invalid", "page_token"]),
        (102, ["session"]),
        (10, ["permission", "pages_manage_posts"]),
        (200, ["permission"]),
        (299, ["permission"]),
        (100, ["page_id"]),
        (368, ["policies"]),
    ],
)
def test_permanent_codes_name_the_fix(code: int, words: list[str]) -> None:
    err = classify_error(graph(400, code, "boom", subcode=463), writing=True)
    assert type(err) is Permanent
    for word in words:
        assert word in err.reason
    assert f"code {code}/463" in err.reason and "Trace1" in err.reason


def test_code_decides_not_status() -> None:
    # a 500 carrying a permanent code is permanent; a 400 carrying a transient code is transient
    assert type(classify_error(graph(500, 190), writing=True)) is Permanent
    assert type(classify_error(graph(400, 4), writing=True)) is Transient


def test_duplicate_is_reconciled() -> None:
    err = classify_error(graph(400, 506, "(#506) Duplicate status message"), writing=True)
    assert isinstance(err, DuplicatePost) and isinstance(err, OutcomeUnknown)


@pytest.mark.parametrize(
    ("exc", "writing", "kind"),
    [
        (graph(503, 9999), True, OutcomeUnknown),
        (graph(503, 9999), False, Transient),
        (graph(400, 9999), True, Permanent),
        (requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused"))), True,  # type: ignore[arg-type]
         Transient),
        (requests.ConnectionError(ProtocolError("Connection aborted.")), True, OutcomeUnknown),
        (requests.ConnectTimeout(), True, Transient),
        (requests.ReadTimeout(), True, OutcomeUnknown),
        (requests.ReadTimeout(), False, Transient),
    ],
)
def test_transport_and_unknown_codes(exc: Exception, writing: bool, kind: type) -> None:
    assert type(classify_error(exc, writing=writing)) is kind


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("not json", None),
        (json.dumps({"1": [{"estimated_time_to_regain_access": 0}]}), None),
        (json.dumps({"1": [{"estimated_time_to_regain_access": 3}],
                     "2": [{"estimated_time_to_regain_access": 10}]}), 600),
    ],
)
def test_regain_after(header: str | None, seconds: float | None) -> None:
    headers = requests.structures.CaseInsensitiveDict()
    if header is not None:
        headers["x-business-use-case-usage"] = header
    assert regain_after(headers) == seconds
