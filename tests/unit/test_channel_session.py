"""ChannelSession: requests' proxy/CA environment handling, read once per host instead of per request."""

from __future__ import annotations

import pytest
import requests
import requests.adapters
from requests_oauthlib import OAuth1

from notifier.channels.http import ChannelSession


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _settings(session: requests.Session, url: str) -> dict[str, object]:
    return session.merge_environment_settings(url, {}, None, None, None)


def test_same_answer_as_requests_for_proxies_no_proxy_and_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "hooks.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    plain, ours = requests.Session(), ChannelSession()
    for url in ("https://api.x.com/2/tweets", "https://hooks.internal/notify", "http://10.0.0.1/x"):
        assert _settings(ours, url) == _settings(plain, url), url
    assert _settings(ours, "https://api.x.com/2/tweets")["proxies"]["https"] == "http://proxy.internal:3128"  # type: ignore[index]
    assert "https" not in _settings(ours, "https://hooks.internal/notify")["proxies"]  # type: ignore[operator]


def test_the_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://first:1")
    ours = ChannelSession()
    assert _settings(ours, "https://a.example/1")["proxies"] == {"https": "http://first:1"}
    monkeypatch.setenv("HTTPS_PROXY", "http://second:2")  # a running worker keeps what it read
    assert _settings(ours, "https://a.example/2")["proxies"] == {"https": "http://first:1"}
    assert _settings(ours, "https://b.example/")["proxies"] == {"https": "http://second:2"}  # a new host reads now


def test_explicit_settings_still_win_and_trust_env_off_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env:1")
    ours = ChannelSession()
    merged = ours.merge_environment_settings("https://a.example/", {"https": "http://mine:2"}, None, "/my.pem", None)
    assert (merged["proxies"], merged["verify"]) == ({"https": "http://mine:2"}, "/my.pem")
    ours.trust_env = False
    assert _settings(ours, "https://c.example/")["proxies"] == {}


class _Capture(requests.adapters.HTTPAdapter):
    """Records what would go on the wire and answers 200 without a network."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b"{}", request
        response.url = request.url or ""
        return response


def _oauth1() -> OAuth1:  # tweepy's signer, with a fixed nonce and time so two signatures can be compared
    return OAuth1("consumer-key", client_secret="consumer-secret", resource_owner_key="access-token",
                  resource_owner_secret="access-secret", decoding=None, nonce="n0nce", timestamp="1700000000")


FB, HOOK, X = "https://graph.example/v21.0/1", "https://hook.example", "https://api.twitter.com/2"
TWEEPY = {"User-Agent": "tweepy"}
CALLS: list[tuple[str, str, dict[str, object]]] = [  # what the channels and tweepy send
    ("POST", f"{FB}/feed", {"data": {"message": "Down · #INC1·2 ü&=", "link": "https://s/x?a=1", "access_token": "t"}}),
    ("GET", f"{FB}/posts", {"params": {"fields": "id,message", "limit": "100", "since": "5"}}),
    ("GET", f"{HOOK}/status?x=1", {"params": [("idempotency_key", "inc1.1:hook")]}),
    ("POST", f"{HOOK}/in", {"data": b'{"a": 1}', "allow_redirects": False,
                            "headers": {"Content-Type": "application/json", "Idempotency-Key": "k", "X-Api-Key": "s"}}),
    ("POST", f"{X}/tweets", {"json": {"text": "Down #INC1·2"}, "headers": {**TWEEPY, "Authorization": "Bearer t"}}),
    ("POST", f"{X}/tweets", {"json": {"text": "Down #INC1·2", "reply": {"in_reply_to_tweet_id": "9"}},
                             "headers": TWEEPY, "auth": "oauth1"}),
    ("GET", f"{X}/users/7/tweets", {"params": {"max_results": 100, "start_time": "2026-01-01T00:00:00Z",
                                               "pagination_token": None}, "headers": TWEEPY, "auth": "oauth1"}),
    ("POST", f"{FB}/feed", {"data": {"message": "m", "skip": None}, "headers": {"Accept": None}}),
]


def _wire(session: requests.Session, method: str, url: str, kwargs: dict[str, object]) -> tuple[object, ...]:
    capture = _Capture()
    session.mount("https://", capture)
    call = dict(kwargs)
    if call.get("auth") == "oauth1":
        call["auth"] = _oauth1()
    session.request(method, url, **call)  # type: ignore[arg-type]
    (sent,) = capture.sent
    return sent.method, sent.url, sorted(sent.headers.items()), sent.body


@pytest.mark.parametrize(("method", "url", "kwargs"), CALLS)
def test_the_lean_path_sends_what_requests_sends(method: str, url: str, kwargs: dict[str, object]) -> None:
    """Byte for byte: method, URL (query encoding), headers (the session's, merged, a None dropped), body, and
    the OAuth 1.0a signature over all of it (tweepy's signer runs on the finished request)."""
    plain = requests.Session()
    assert _wire(ChannelSession(), method, url, kwargs) == _wire(plain, method, url, kwargs)


def test_a_plain_call_skips_requests_per_call_merging(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    monkeypatch.setattr("requests.sessions.get_netrc_auth", lambda url, *a: reads.append(url))
    monkeypatch.setattr("notifier.channels.http.get_netrc_auth", lambda url, *a: reads.append(url), raising=False)
    ours = ChannelSession()
    capture = _Capture()
    ours.mount("https://", capture)

    def not_here(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Session.prepare_request ran for a plain call")

    monkeypatch.setattr(requests.Session, "prepare_request", not_here)
    for n in range(3):
        ours.post("https://graph.example/v21.0/1/feed", data={"message": f"m{n}"})
    assert reads == ["https://graph.example/v21.0/1/feed"]  # ~/.netrc once per host, like the environment
    ours.headers["Authorization"] = "Bearer new"  # a session header set later (Mastodon) is sent from then on
    ours.get("https://graph.example/v21.0/1/posts")
    assert capture.sent[-1].headers["Authorization"] == "Bearer new"
    with pytest.raises(requests.exceptions.InvalidHeader):
        ours.get("https://graph.example/", headers={"X-Bad": "a\r\nInjected: 1"})


def test_cookies_and_hooks_take_requests_own_path() -> None:
    ours = ChannelSession()
    capture = _Capture()
    ours.mount("https://", capture)
    ours.cookies.set("session", "abc", domain="graph.example")
    seen: list[int] = []
    ours.get("https://graph.example/v21.0/1/posts", hooks={"response": lambda r, **_: seen.append(r.status_code)})
    assert capture.sent[-1].headers["Cookie"] == "session=abc" and seen == [200]
