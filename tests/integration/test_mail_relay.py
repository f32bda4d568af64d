"""RelayConnection against a real SMTP server (aiosmtpd), with and without PIPELINING (RFC 2920).

What the e-mail channel's crash guarantee rests on: ``before_accept`` runs while the relay cannot yet
have taken the message (its end-of-data line is not out), a refused recipient costs only itself, and a
message whose ``before_accept`` fails is never taken.
"""

from __future__ import annotations

import pytest

from notifier.channels.mail import Refused, RelayConnection
from notifier.config.settings import RelaySettings
from tests.fakes.smtp_sink import SmtpSink
from tests.support import wait_for

pytestmark = pytest.mark.integration


def _message(to: str, body: str) -> bytes:
    return (f"From: status@example.net\r\nTo: {to}\r\nSubject: relay test\r\nMessage-ID: <{to}>\r\n\r\n"
            f"{body}\r\n").encode()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_one_connection_a_refused_recipient_and_the_hook_before_the_end_of_data(pipelining: bool) -> None:
    with SmtpSink(pipelining=pipelining) as sink:
        sink.refuse.add("nobody@example.org")
        relay = RelaySettings(host="127.0.0.1", port=sink.port, security="none", from_address="status@example.net")
        seen_at_hook: list[int] = []
        with RelayConnection(relay) as conn:
            assert conn.pipelining is pipelining  # which of the two paths ran
            conn.send("a@example.org", _message("a@example.org", ".a line that starts with a dot\r\n."),
                      before_accept=lambda: seen_at_hook.append(len(sink.messages)))
            with pytest.raises(Refused):
                conn.send("nobody@example.org", _message("nobody@example.org", "never"),
                          before_accept=lambda: seen_at_hook.append(-1))
            conn.send("b@example.org", _message("b@example.org", "second"),
                      before_accept=lambda: seen_at_hook.append(len(sink.messages)))
        wait_for(lambda: len(sink.messages) == 2, timeout=30, what="both accepted messages at the server")
        assert [to for to, _ in sink.messages] == ["a@example.org", "b@example.org"]
        assert sink.sessions == 1
        # the hook ran for each accepted message, each time before the server had that message
        assert seen_at_hook == [0, 1]
        first = sink.messages[0][1].get_content()
        assert first.splitlines() == [".a line that starts with a dot", "."]  # dot-stuffed on the wire


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_a_message_whose_hook_fails_is_never_taken(pipelining: bool) -> None:
    with SmtpSink(pipelining=pipelining) as sink:
        relay = RelaySettings(host="127.0.0.1", port=sink.port, security="none", from_address="status@example.net",
                              timeout=30)

        def fail() -> None:
            raise RuntimeError("the record could not be written")

        with pytest.raises(RuntimeError), RelayConnection(relay) as conn:
            conn.send("lost@example.org", _message("lost@example.org", "body without its end"), before_accept=fail)
        with RelayConnection(relay) as conn:  # the server goes on serving
            conn.send("next@example.org", _message("next@example.org", "after"))
        wait_for(lambda: len(sink.messages) >= 1, timeout=30, what="the next message at the server")
        assert [to for to, _ in sink.messages] == ["next@example.org"]
