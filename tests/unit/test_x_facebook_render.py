"""Rendering through the packaged templates: language, override, marker and link in every post."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from notifier.channels.facebook import FacebookChannel, FacebookSettings
from notifier.channels.x import XChannel, XSettings
from notifier.channels.x_text import weighted_length
from tests.fakes.social import context, incident, notice


def x_channel(override: str | None = None, **ctx: object) -> XChannel:
    settings = XSettings(type="x", user_token=SecretStr("u"), language=override)
    return XChannel("x", settings, context(**ctx))  # type: ignore[arg-type]


def fb_channel(override: str | None = None, **ctx: object) -> FacebookChannel:
    settings = FacebookSettings(type="facebook", page_id="1", page_token=SecretStr("t"), language=override)
    return FacebookChannel("fb", settings, context(**ctx))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("page_language", "override", "label"),
    [("en", None, "Investigating"), ("de", None, "Wir untersuchen"), ("en", "de", "Wir untersuchen"),
     ("de", "en", "Investigating")],
)
def test_language_follows_the_page_unless_the_channel_overrides(page_language: str, override: str | None,
                                                                 label: str) -> None:
    inc = incident(["Mail is slow."])
    for chan in (x_channel(override, language=page_language), fb_channel(override, language=page_language)):
        text = chan.render(notice(inc, 1, chan.name)).text
        assert label in text
        assert "#INC42·1" in text
        assert "https://status.example.com/incidents/inc42.html" in text


def test_x_rendering_reports_weighted_lengths() -> None:
    inc = incident(["Mail is slow. " * 40])
    rendering = x_channel().render(notice(inc, 1, "x"))
    assert len(rendering.parts) > 1
    assert rendering.info["weighted_lengths"] == [weighted_length(p) for p in rendering.parts]
    assert max(rendering.info["weighted_lengths"]) <= 280


def test_facebook_rendering_is_one_post_with_a_link() -> None:
    inc = incident(["Mail is slow. " * 40])
    rendering = fb_channel().render(notice(inc, 1, "fb"))
    assert len(rendering.parts) == 1
    assert rendering.info["link"] == "https://status.example.com/incidents/inc42.html"


def test_templates_dir_overrides_the_packaged_templates(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "update.en.j2").write_text("CUSTOM {{ incident.name }} / {{ text }}")
    chan = x_channel(templates_dir=str(tmp_path))
    text = chan.render(notice(incident(["Slow."]), 1, "x")).text
    assert text.startswith("CUSTOM Mail delivery delayed / Slow.")
    assert text.endswith("#INC42·1")  # the channel still adds link and marker


def test_user_text_is_not_html_escaped_in_plain_text_posts() -> None:
    text = x_channel().render(notice(incident(["Use <imap> & 'smtp' now"]), 1, "x")).text
    assert "Use <imap> & 'smtp' now" in text


def test_secrets_are_redacted_when_a_channel_describes_itself() -> None:
    from notifier.channels.bluesky import BlueskyChannel, BlueskySettings
    from notifier.channels.mastodon import MastodonChannel, MastodonSettings

    ctx = context()
    channels = [
        XChannel("x", XSettings(type="x", consumer_key=SecretStr("ck-SECRET"), consumer_secret=SecretStr("cs-SECRET"),
                                access_token=SecretStr("at-SECRET"), access_token_secret=SecretStr("ats-SECRET"),
                                bearer_token=SecretStr("b-SECRET")), ctx),
        FacebookChannel("fb", FacebookSettings(type="facebook", page_id="1", page_token=SecretStr("pt-SECRET"),
                                               app_secret=SecretStr("as-SECRET")), ctx),
        MastodonChannel("m", MastodonSettings(type="mastodon", base_url="https://m.example",
                                              access_token=SecretStr("m-SECRET")), ctx),
        BlueskyChannel("b", BlueskySettings(type="bluesky", identifier="a.example",
                                            app_password=SecretStr("bp-SECRET")), ctx),
    ]
    for chan in channels:
        shown = f"{chan.describe()} {chan!r} {chan.settings!r}"
        assert "SECRET" not in shown and "**********" in shown
