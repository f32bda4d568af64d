"""The ``sources:`` section: which webhook receivers are enabled and how each authenticates.

    sources:
      alertmanager:
        auth: bearer                 # Authorization: Bearer <token>
        token: ${ALERTMANAGER_TOKEN}
      generic:
        auth: hmac                   # X-Notifier-Signature: sha256=hex(HMAC(secret, "<ts>.<body>"))
        secret: ${GENERIC_HMAC_SECRET}
        tolerance_seconds: 300       # X-Notifier-Timestamp further than this from now: rejected

A source that is not listed is disabled (its endpoint answers 404). Secrets must be ``${ENV}``
references; the config loader rejects literals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class SourceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    auth: Literal["bearer", "hmac"] = "bearer"
    token: SecretStr | None = Field(None, description="bearer token; a ${ENV} reference")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key; a ${ENV} reference")
    tolerance_seconds: float = Field(300, gt=0, description="replay window for signed requests")
    signature_header: str = "X-Notifier-Signature"
    timestamp_header: str = "X-Notifier-Timestamp"

    @model_validator(mode="after")
    def _credential_for_auth(self) -> SourceSettings:
        if self.auth == "bearer" and not (self.token and self.token.get_secret_value()):
            raise ValueError("auth 'bearer' needs token: ${ENV_VAR}")
        if self.auth == "hmac" and not (self.secret and self.secret.get_secret_value()):
            raise ValueError("auth 'hmac' needs secret: ${ENV_VAR}")
        return self


class SourcesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alertmanager: SourceSettings | None = None
    grafana: SourceSettings | None = None
    uptime_kuma: SourceSettings | None = Field(None, alias="uptime-kuma")
    generic: SourceSettings | None = None

    def get(self, source: str) -> SourceSettings | None:
        """Settings of an enabled source by its endpoint name (``uptime-kuma``), else None."""
        conf = getattr(self, source.replace("-", "_"), None)
        return conf if isinstance(conf, SourceSettings) and conf.enabled else None

    def configured(self) -> Iterator[tuple[str, SourceSettings]]:
        """(key as written in YAML, settings) for every listed source, enabled or not."""
        for name, field in type(self).model_fields.items():
            conf = getattr(self, name)
            if conf is not None:
                yield field.alias or name, conf
