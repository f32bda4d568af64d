"""ChannelSession: requests' proxy/CA environment handling, read once per host instead of per request."""

from __future__ import annotations

import pytest
import requests

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
