"""statuspage: the status page as a channel. One channel entry per publishing target.

    channels:
      page-local: {type: statuspage, target: directory, path: var/site}
      page-s3:    {type: statuspage, target: s3, bucket: status, endpoint_url: https://s3.example,
                   access_key_id: ${S3_KEY}, secret_access_key: ${S3_SECRET}}

``send`` ignores the notice's text: it reads the whole current state (the context's snapshot reader,
``notifier.statuspage.snapshot.StoreSnapshots`` in the app), builds the
site and publishes it to this channel's one target. Publishing is a function of state, so the
channel is ``idempotent``: an unknown outcome is simply sent again, and a later update's publish
also carries every earlier one.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from notifier.channels.base import Channel, ChannelContext, Rendering
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt
from notifier.errors import Permanent
from notifier.statuspage.generator import RenderCache, render_site
from notifier.statuspage.publish import DirectoryTarget, PublishResult, S3Target, s3_client
from notifier.statuspage.snapshot import Snapshot


class StatuspageSettings(ChannelSettings):
    target: Literal["directory", "s3"] = "directory"
    # directory: the document root a web server serves; it becomes a symlink to <path>.releases/<id>
    path: str | None = None
    keep_releases: int = Field(5, ge=2)
    # s3 (AWS, R2, B2, Hetzner, MinIO, ...)
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    cache_seconds: int = Field(60, ge=0, description="Cache-Control max-age of pages, JSON and feeds")
    asset_cache_seconds: int = Field(3600, ge=0, description="Cache-Control max-age of static/")

    @model_validator(mode="after")
    def _target_fields(self) -> StatuspageSettings:
        if self.target == "directory" and not self.path:
            raise ValueError("target 'directory' needs 'path' (the directory a web server serves)")
        if self.target == "s3" and not self.bucket:
            raise ValueError("target 's3' needs 'bucket'")
        return self


class StatuspageChannel(Channel):
    type_name = "statuspage"
    settings_model = StatuspageSettings
    settings: StatuspageSettings
    idempotent: ClassVar[bool] = True

    def __init__(self, name: str, settings: ChannelSettings, context: ChannelContext) -> None:
        super().__init__(name, settings, context)
        self.cache = RenderCache()  # incident pages survive between publishes in this process
        self._target: DirectoryTarget | S3Target | None = None

    def render(self, notice: Notice) -> Rendering:
        """What the page will say about this update (the page itself is the whole current state)."""
        text = notice.update.text(self.language, self.context.page.language)
        return Rendering(
            parts=(f"{notice.incident.title(self.language)}: {text}",),
            language=self.language,
            info={"target": self.settings.target, "url": self.context.page.incident_url(notice.incident.id)},
        )

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        result = self.publish()
        return Receipt(
            remote_id=result.release,
            url=self.context.page.incident_url(notice.incident.id),
            extra={"target": result.target, "written": str(result.written)},
        )

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        return None  # idempotent: re-publishing is the reconciliation

    # ---- the work --------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current state as this channel may show it (updates aimed at other channels left out)."""
        if self.context.snapshots is None:
            raise Permanent(
                "the statuspage channel needs a snapshot reader in its ChannelContext; "
                "build it with notifier.bootstrap.build"
            )
        return self.context.snapshots.read(channel=self.name)

    def publish(self, snap: Snapshot | None = None) -> PublishResult:
        """Build the site from ``snap`` (default: the store's current state) and publish it here."""
        snap = snap or self.snapshot()
        now = self.context.clock.now()
        files = render_site(snap, now, self.cache)
        return self.target().publish(files, now)

    def target(self) -> DirectoryTarget | S3Target:
        if self._target is None:
            s = self.settings
            url = self.context.page.url
            if s.target == "directory":
                assert s.path
                self._target = DirectoryTarget(s.path, s.keep_releases, url)
            else:
                assert s.bucket
                client = s3_client(
                    s.endpoint_url,
                    s.region,
                    s.access_key_id.get_secret_value() if s.access_key_id else None,
                    s.secret_access_key.get_secret_value() if s.secret_access_key else None,
                    timeout=self.context.http_timeout,
                )
                self._target = S3Target(client, s.bucket, s.prefix, s.cache_seconds, s.asset_cache_seconds, url)
        return self._target
