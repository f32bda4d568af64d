"""statuspage channel entries in the config: one target each, clear errors naming the field."""

from __future__ import annotations

import pytest

from notifier.channels.statuspage import StatuspageChannel, StatuspageSettings
from notifier.config_loader import parse_settings
from notifier.errors import ConfigError

GOOD = """
channels:
  page-local: {type: statuspage, target: directory, path: var/site}
  page-s3:
    type: statuspage
    target: s3
    bucket: status
    endpoint_url: http://127.0.0.1:9000
    access_key_id: ${S3_KEY}
    secret_access_key: ${S3_SECRET}
"""


def test_two_targets_are_two_channels_with_secrets_redacted() -> None:
    settings = parse_settings(GOOD, env={"S3_KEY": "AKIAEXAMPLE", "S3_SECRET": "s3cr3t-value"})
    local, s3 = settings.channels["page-local"], settings.channels["page-s3"]
    assert isinstance(local, StatuspageSettings) and local.target == "directory" and local.path == "var/site"
    assert isinstance(s3, StatuspageSettings) and s3.bucket == "status"
    assert s3.secret_access_key is not None and s3.secret_access_key.get_secret_value() == "s3cr3t-value"
    dumped = str(settings.redacted())
    assert "s3cr3t-value" not in dumped and "AKIAEXAMPLE" not in dumped
    assert StatuspageChannel.idempotent is True


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ("{type: statuspage, target: directory}", "channels.p", "needs 'path'"),
        ("{type: statuspage, target: s3}", "channels.p", "needs 'bucket'"),
        ("{type: statuspage, target: ftp, path: x}", "channels.p.target", "'directory' or 's3'"),
        (
            "{type: statuspage, target: s3, bucket: b, secret_access_key: plain}",
            "channels.p.secret_access_key",
            "${ENV_VAR}",
        ),
        (
            "{type: statuspage, path: x, keep_releases: 1}",
            "channels.p.keep_releases",
            "greater than or equal",
        ),
        ("{type: statuspage, path: x, colour: red}", "channels.p.colour", "unknown key"),
    ],
)
def test_bad_entries_name_the_field(body: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(f"channels:\n  p: {body}\n", env={})
    problems = [(p.path, p.message) for p in err.value.problems]
    assert any(p == path and message in m for p, m in problems), problems
