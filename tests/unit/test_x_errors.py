"""X: every library error becomes exactly one of ours; settings explain what is missing."""

from __future__ import annotations

import json
from http.client import RemoteDisconnected

import pytest
import requests
import tweepy
from pydantic import SecretStr, ValidationError
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from notifier.channels.x import DuplicateContent, ParentGone, XSettings, classify_error, config_warnings
from notifier.config_loader import parse_settings
from notifier.errors import ConfigError, OutcomeUnknown, Permanent, Transient

NOW = 1_800_000_000.0
# what requests raises for a refused connection, and for a server that hung up after reading the post
REFUSED = MaxRetryError(None, "/2/tweets", NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
HUNG_UP = ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection"))


def response(status: int, body: dict | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}.get(status, "Error")
    resp._content = json.dumps(body or {}).encode()
    resp.headers.update(headers or {})
    return resp


def problem(status: int, title: str, detail: str) -> dict:
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}


DUP = problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")

CASES = [
    # (exception, writing, expected type, words the reason must contain, retry_after)
    (tweepy.TooManyRequests(response(429), reset_time=int(NOW) + 120), True, Transient, ["429"], 121),
    (tweepy.TooManyRequests(response(429), reset_time=int(NOW) - 5), True, Transient, ["429"], 1),
    (tweepy.TooManyRequests(response(429), reset_time=None), True, Transient, ["without a reset"], 60),
    (tweepy.Forbidden(response(403, DUP)), True, DuplicateContent, ["duplicate"], None),
    (tweepy.Forbidden(response(403, problem(403, "Forbidden", "You attempted to reply to a Tweet that is "
                                                              "deleted or not visible to you."))), True,
     ParentGone, ["previous post is gone"], None),
    (tweepy.Forbidden(response(403, problem(403, "Forbidden", "You are not permitted to do this."))), True,
     Permanent, ["Read and Write", "user-context"], None),
    (tweepy.Unauthorized(response(401, problem(401, "Unauthorized", "Unauthorized"))), True, Permanent,
     ["access_token", "user_token", "expired"], None),
    (tweepy.BadRequest(response(400, {"title": "Invalid Request", "detail": "too long"})), True, Permanent,
     ["400", "too long"], None),
    (tweepy.TwitterServerError(response(503)), True, OutcomeUnknown, ["503"], None),
    (tweepy.TwitterServerError(response(500)), False, Transient, ["500"], 30),
    (requests.ConnectionError(REFUSED), True, Transient, ["cannot reach"], None),
    (requests.ConnectionError(HUNG_UP), True, OutcomeUnknown, ["may have"], None),
    (requests.ConnectionError("no cause known"), True, OutcomeUnknown, ["may have"], None),
    (requests.ConnectTimeout("slow connect"), True, Transient, ["cannot reach"], None),
    (requests.ReadTimeout("slow answer"), True, OutcomeUnknown, ["ReadTimeout", "may have"], None),
    (requests.ReadTimeout("slow answer"), False, Transient, ["reading"], None),
    (requests.exceptions.ChunkedEncodingError("cut"), True, OutcomeUnknown, ["ChunkedEncodingError"], None),
]


@pytest.mark.parametrize(("exc", "writing", "kind", "words", "retry_after"), CASES)
def test_classify_error(exc: Exception, writing: bool, kind: type, words: list[str],
                        retry_after: float | None) -> None:
    err = classify_error(exc, writing=writing, now=NOW)
    assert type(err) is kind
    for word in words:
        assert word in err.reason
    if retry_after is not None:
        assert isinstance(err, Transient)
        assert err.retry_after == pytest.approx(retry_after, abs=1)


def test_a_duplicate_is_an_outcome_unknown_so_the_ledger_reconciles() -> None:
    assert issubclass(DuplicateContent, OutcomeUnknown)


def oauth1(**kw: object) -> dict[str, object]:
    return {"type": "x", "consumer_key": SecretStr("k"), "consumer_secret": SecretStr("s"),
            "access_token": SecretStr("t"), "access_token_secret": SecretStr("ts"), **kw}


def test_settings_accept_oauth1_or_a_user_token() -> None:
    assert XSettings.model_validate(oauth1()).user_token is None
    assert XSettings.model_validate({"type": "x", "user_token": SecretStr("u")}).user_token is not None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"type": "x"}, ["user_token", "consumer_key", "access_token_secret"]),
        ({"type": "x", "consumer_key": SecretStr("k"), "consumer_secret": SecretStr("s")},
         ["missing access_token, access_token_secret"]),
        ({"type": "x", "bearer_token": SecretStr("b")}, ["app-only bearer_token cannot post"]),
        ({**oauth1(), "api_base_url": "api.example"}, ["api_base_url"]),
    ],
)
def test_settings_say_what_is_missing(data: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        XSettings.model_validate(data)
    for word in words:
        assert word in str(info.value)


def test_config_check_warns_about_app_only_bearer_and_budget() -> None:
    text = """
channels:
  tw:
    type: x
    user_token: ${X_USER}
    bearer_token: ${X_BEARER}
    budget_per_15min: 500
  quiet:
    type: x
    user_token: ${X_USER}
"""
    settings = parse_settings(text, env={"X_USER": "u", "X_BEARER": "b"})
    warnings = config_warnings(settings)
    assert len(warnings) == 2
    assert warnings[0].startswith("channels.tw.bearer_token:") and "cannot post" in warnings[0]
    assert warnings[1].startswith("channels.tw.budget_per_15min:")
    # what `notifier config check` passes: one channel's settings
    assert config_warnings(settings.channels["tw"]) == [w.removeprefix("channels.tw.") for w in warnings]
    assert config_warnings(settings.channels["quiet"]) == []


def test_secrets_must_be_env_references() -> None:
    text = "channels:\n  tw:\n    type: x\n    user_token: literal-token\n"
    with pytest.raises(Exception) as info:
        parse_settings(text, env={})
    assert "channels.tw.user_token" in str(info.value)
    assert "literal-token" not in str(info.value)


@pytest.mark.parametrize("value", [0, -1, 65, "many"])
def test_max_in_flight_out_of_range_is_refused_with_its_key_path(value: object) -> None:
    text = f"channels:\n  tw:\n    type: x\n    user_token: ${{TOKEN}}\n    max_in_flight: {value}\n"
    with pytest.raises(ConfigError) as info:
        parse_settings(text, env={"TOKEN": "t"})
    assert [p.path for p in info.value.problems] == ["channels.tw.max_in_flight"]


def test_max_in_flight_defaults_to_8_and_1_is_the_strict_rule() -> None:
    text = "channels:\n  tw:\n    type: x\n    user_token: ${TOKEN}\n  one:\n    type: x\n    user_token: ${TOKEN}\n" \
           "    max_in_flight: 1\n"
    settings = parse_settings(text, env={"TOKEN": "t"})
    assert [settings.channels[n].max_in_flight for n in ("tw", "one")] == [8, 1]  # type: ignore[attr-defined]
