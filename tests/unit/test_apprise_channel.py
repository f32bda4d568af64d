"""The apprise channel's pure parts: how recorded HTTP exchanges become outcomes (one table), config
validation with key paths, redaction, and rendering within each service's limit."""

from __future__ import annotations

import pytest
import requests
from pydantic import SecretStr
from urllib3.exceptions import MaxRetryError, NewConnectionError

from notifier.channels.apprise import (
    SERVICES,
    AppriseChannel,
    AppriseSettings,
    Exchange,
    classify,
    instantiate,
    notify_type,
    receipt_from,
)
from notifier.config_loader import parse_settings
from notifier.errors import CannotReconcile, ConfigError, OutcomeUnknown, Permanent, Transient
from tests.fakes.social import context, incident, notice

TOKEN = "123456789:AAE-secret-token_xyz"
# One well-formed URL per scheme (made-up credentials): Apprise parses them without any request.
SAMPLES = {
    "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
    "discord": "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "workflow": "workflow://prod-99.westus.logic.azure.com:443/abc123/def456/?signature=ghi789",
    "workflows": "workflows://prod-99.westus.logic.azure.com:443/abc123/def456/?signature=ghi789",
    "tgram": f"tgram://{TOKEN}/-1001234567890",
    "matrix": "matrix://bot:pass@matrix.example.com/#ops",
    "matrixs": "matrixs://bot:pass@matrix.example.com/#ops",
    "ntfy": "ntfy://127.0.0.1:9/alerts",
    "ntfys": "ntfys://ntfy.example.com/alerts",
    "json": "json://127.0.0.1:9/hook",
    "jsons": "jsons://chat.example.com/hook",
}


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))  # type: ignore[arg-type]


def answer(status: int, body: str = "", retry_after: float | None = None, method: str = "POST") -> Exchange:
    return Exchange(method, status, None, retry_after, body)


def failed(exc: BaseException) -> Exchange:
    return Exchange("POST", error=exc)


# (what happened on the wire, what notify() returned) -> the outcome and a word its reason must contain
CASES = [
    ("2xx", [answer(200, '{"id": "m1"}')], True, None, None),
    ("login then send", [answer(200), answer(200, '{"event_id": "$e"}')], True, None, None),
    ("nothing sent", [], False, Permanent, "check channels.chat.url"),
    ("503 with Retry-After", [answer(503, "busy", 7)], False, Transient, "503"),
    ("500", [answer(500, "oops")], False, Transient, "500"),
    ("502 from a gateway", [answer(502)], False, Transient, "502"),
    ("429", [answer(429, "slow down", 30)], False, Transient, "429"),
    ("400 names the answer", [answer(400, '{"error": "invalid topic"}')], False, Permanent, "invalid topic"),
    ("404", [answer(404, "no such hook")], False, Permanent, "404"),
    ("401 names the url key", [answer(401, "bad token")], False, Permanent, "channels.chat.url"),
    ("403", [answer(403, "forbidden")], False, Permanent, "credentials"),
    ("redirect", [answer(302)], False, Permanent, "redirects"),
    ("2xx but refused (Slack ok:false)", [answer(200, '{"ok": false, "error": "channel_not_found"}')], False,
     Permanent, "channel_not_found"),
    ("connection refused", [failed(refused())], False, Transient, "cannot connect"),
    ("connect timeout", [failed(requests.ConnectTimeout())], False, Transient, "cannot connect"),
    ("read timeout after sending", [failed(requests.ReadTimeout())], False, OutcomeUnknown, "timed out"),
    ("connection dropped mid-request", [failed(requests.ConnectionError("Connection aborted"))], False,
     OutcomeUnknown, "dropped"),
    ("not a requests error", [failed(RuntimeError("boom"))], False, OutcomeUnknown, "RuntimeError"),
    ("login fine, send 500: the last decides", [answer(200), answer(500)], False, Transient, "500"),
    ("lookup 500 then nothing more", [answer(500, method="GET")], False, Transient, "500"),
]


@pytest.mark.parametrize(("exchanges", "delivered", "expected", "word"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exchanges_map_to_one_outcome(exchanges: list[Exchange], delivered: bool,
                                      expected: type[Exception] | None, word: str | None) -> None:
    error = classify(exchanges, delivered, "ntfy", "channels.chat.url")
    if expected is None:
        assert error is None
        return
    assert type(error) is expected
    assert word is not None and word in error.reason


def test_retry_after_is_passed_to_the_ledger() -> None:
    error = classify([answer(429, "", 30)], False, "ntfy", "channels.chat.url")
    assert isinstance(error, Transient) and error.retry_after == 30
    error = classify([answer(503)], False, "ntfy", "channels.chat.url")
    assert isinstance(error, Transient) and error.retry_after is None


def test_reasons_never_carry_the_url() -> None:
    exc = requests.ReadTimeout(f"HTTPSConnectionPool(host='api.telegram.org'): /bot{TOKEN}/sendMessage")
    error = classify([failed(exc)], False, "Telegram", "channels.chat.url")
    assert error is not None and TOKEN not in error.reason


@pytest.mark.parametrize(("body", "remote_id"), [
    ('{"id": "ntfy1"}', "ntfy1"), ('{"event_id": "$ev"}', "$ev"), ('{"ok": true, "ts": "1.2"}', "1.2"),
    ('{"ok": true, "result": {"message_id": 77}}', "77"), ("ok", "fallback"), ("", "fallback"),
])
def test_receipt_takes_the_services_message_id(body: str, remote_id: str) -> None:
    assert receipt_from([answer(200, body)], "fallback").remote_id == remote_id


# -- configuration --------------------------------------------------------------------------------


def chat_config(url: str) -> str:
    return f"channels:\n  chat:\n    type: apprise\n    url: '{url}'\n"


def problems(text: str, env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "test.yaml", env)
    return {p.path: p.message for p in info.value.problems}


def test_a_literal_url_is_refused_with_its_key_path() -> None:
    found = problems(chat_config(SAMPLES["ntfy"]), {})
    assert "${ENV_VAR}" in found["channels.chat.url"]


@pytest.mark.parametrize(("url", "word"), [
    ("mailto://user:pw@example.com", "unsupported Apprise scheme mailto://"),
    ("https://example.com/hook", "unsupported Apprise scheme https://"),
    ("not a url", "unsupported Apprise scheme (none)"),
    ("tgram://", "Apprise cannot use this tgram:// URL"),
    ("ntfy://127.0.0.1:9/alerts/ops", "names 2 targets"),
    (f"tgram://{TOKEN}/-100123/-100456", "names 2 targets"),
])
def test_config_check_refuses_what_this_channel_cannot_send(url: str, word: str) -> None:
    found = problems(chat_config("${CHAT_URL}"), {"CHAT_URL": url})
    assert word in found["channels.chat.url"]
    secret = url.split("://", 1)[-1]
    assert not secret or secret not in " ".join(found.values())  # the URL's credentials never in errors


def test_every_supported_scheme_loads_and_stays_redacted() -> None:
    for scheme, url in SAMPLES.items():
        settings = parse_settings(chat_config("${CHAT_URL}"), "t", {"CHAT_URL": url})
        chat = settings.channels["chat"]
        assert isinstance(chat, AppriseSettings) and chat.url.get_secret_value() == url
        channel = AppriseChannel("chat", chat, context())
        shown = f"{settings.redacted()} {chat!r} {channel!r} {channel.describe()}"
        assert url not in shown and url.split("://", 1)[1] not in shown, scheme
        assert channel.describe()["service"] == SERVICES[scheme].name


def test_our_limits_never_exceed_what_apprise_sends_in_one_message() -> None:
    assert set(SAMPLES) == set(SERVICES)
    for scheme, url in SAMPLES.items():
        assert SERVICES[scheme].max_length <= instantiate(url).body_maxlen, scheme


def test_apprise_retries_and_throttle_are_off_whatever_the_url_says() -> None:
    plugin = instantiate("ntfy://127.0.0.1:9/alerts?retry=3&wait=5", timeout=2.5)
    assert (plugin.retry, plugin.wait, plugin.request_rate_per_sec) == (0, 0.0, 0)
    assert (plugin.socket_connect_timeout, plugin.socket_read_timeout) == (2.5, 2.5)
    assert len(plugin) == 1
    assert instantiate(SAMPLES["matrix"]).default_retries == 1


def test_reconcile_hands_the_notice_to_a_person() -> None:
    chat = AppriseChannel("chat", AppriseSettings(type="apprise", url=SecretStr(SAMPLES["ntfy"])), context())
    with pytest.raises(CannotReconcile) as info:
        chat.reconcile(notice(incident(["Down."]), 1, "chat"))
    assert "deliveries retry --force inc42.1:chat" in info.value.reason


# -- rendering ------------------------------------------------------------------------------------


def channel(scheme: str, language: str = "en") -> AppriseChannel:
    settings = AppriseSettings(type="apprise", url=SecretStr(SAMPLES[scheme]))
    return AppriseChannel("chat", settings, context(language=language))


@pytest.mark.parametrize(("language", "label"), [("en", "[Investigating]"), ("de", "[Wir untersuchen]")])
def test_text_comes_from_the_shared_templates_in_the_page_language(language: str, label: str) -> None:
    text = channel("json", language).render(notice(incident(["Mail is slow."]), 1, "chat")).text
    assert text.startswith(label)
    assert "Mail is slow." in text and "#INC42·1" in text
    assert "https://status.example.com/incidents/inc42.html" in text


@pytest.mark.parametrize("scheme", ["workflow", "discord", "tgram", "slack", "ntfy"])
def test_a_long_update_is_cut_to_the_services_limit_keeping_link_and_marker(scheme: str) -> None:
    chan = channel(scheme)
    rendering = chan.render(notice(incident(["Störung im Rechenzentrum. " * 500]), 1, "chat"))
    assert len(rendering.parts) == 1
    text = rendering.text
    limit = SERVICES[scheme].max_length
    size = len(text.encode()) if SERVICES[scheme].in_bytes else len(text)
    assert limit - 30 < size <= limit  # cut close to the limit, not far below it
    assert "…" in text and text.endswith("https://status.example.com/incidents/inc42.html #INC42·1")


def test_a_short_update_is_not_touched() -> None:
    text = channel("discord").render(notice(incident(["Mail is slow."]), 1, "chat")).text
    assert "…" not in text


def test_notify_type_follows_the_state() -> None:
    inc = incident(["Down.", "Found it.", "Watching.", "Fixed."])
    assert [notify_type(notice(inc, n, "chat")) for n in (1, 4)] == ["failure", "success"]
    assert notify_type(notice(incident(["Hello."], kind="broadcast"), 1, "chat")) == "info"


# -- send's own decisions (a stand-in plugin: no network) ---------------------------------------------


class StubPlugin:
    """Stands in for an Apprise plugin: records notify() calls, then raises or answers as told."""

    def __init__(self, raises: BaseException | None = None, **state: object) -> None:
        self.raises, self.calls = raises, 0
        self.__dict__.update(state)

    def notify(self, **kwargs: object) -> bool:
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return True


def with_plugin(plugin: StubPlugin) -> AppriseChannel:
    chan = channel("discord")
    chan._plugin = plugin  # type: ignore[assignment]
    return chan


def test_a_plugin_that_raises_before_any_request_fails_permanently() -> None:
    chan = with_plugin(StubPlugin(raises=KeyError("bad")))
    n = notice(incident(["Down."]), 1, "chat")
    with pytest.raises(Permanent) as info:
        chan.send(n, chan.render(n))
    assert "KeyError before sending" in info.value.reason and "channels.chat.url" in info.value.reason


def test_discords_rate_limit_window_goes_back_to_the_ledger_instead_of_sleeping() -> None:
    from datetime import UTC, datetime, timedelta

    reset = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=42)
    plugin = StubPlugin(ratelimit_remaining=0, ratelimit_reset=reset)
    chan = with_plugin(plugin)
    n = notice(incident(["Down."]), 1, "chat")
    with pytest.raises(Transient) as info:
        chan.send(n, chan.render(n))
    assert plugin.calls == 0
    assert info.value.retry_after is not None and 40 < info.value.retry_after <= 43
    plugin.ratelimit_remaining = 3  # type: ignore[attr-defined]
    assert chan.send(n, chan.render(n)).remote_id == n.id  # window open again: sent (no id in an answer)
    assert plugin.calls == 1


def test_the_urls_token_is_masked_in_log_lines_apprise_builds_from_it(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from notifier import logsafe

    url = SAMPLES["tgram"]
    settings = parse_settings(chat_config("${CHAT_URL}"), "t", {"CHAT_URL": url})
    logsafe.install(settings)
    chan = AppriseChannel("chat", settings.channels["chat"], context())  # type: ignore[arg-type]
    chan.plugin()
    with caplog.at_level(logging.DEBUG, logger="apprise"):
        logging.getLogger("apprise").warning("Telegram POST URL: https://api.telegram.org/bot%s/sendMessage", TOKEN)
    assert "AAE-secret-token_xyz" not in caplog.text and logsafe.MASK in caplog.text
