from __future__ import annotations

import logging

from notifier import logsafe
from notifier.config_loader import parse_settings


def test_every_configured_secret_is_masked_in_any_log_record(caplog) -> None:
    text = (
        "redis: {url: '${REDIS_URL}'}\n"
        "channels:\n"
        "  hook: {type: webhook, url: 'http://h/', secret: '${HOOK_SECRET}'}\n"
        "staff: {tokens: [{name: a, token: '${STAFF}', role: viewer}]}\n"
    )
    env = {"REDIS_URL": "redis://:redispass1@db:6379/0", "HOOK_SECRET": "hook-secret-1", "STAFF": "staff-token-1"}
    settings = parse_settings(text, "t", env)
    logsafe.install(settings)
    library = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        library.warning("Headers: {'Authorization': 'Bearer %s'} url=%s", "staff-token-1", "/x?t=hook-secret-1")
        logging.getLogger("other").error("connecting to redis://:redispass1@db:6379/0")
    text_out = caplog.text
    assert "staff-token-1" not in text_out and "hook-secret-1" not in text_out and "redispass1" not in text_out
    assert text_out.count(logsafe.MASK) == 3
    assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.INFO
