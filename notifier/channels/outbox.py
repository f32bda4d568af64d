"""outbox: appends one JSON line per notice to a local file. The default for demos and dry runs.

Appends are serialised with flock and fsynced, so a posted notice is on disk before the ledger says
so; reconcile scans the file for the notice id.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from notifier.channels.base import Channel, Rendering
from notifier.config import ChannelSettings
from notifier.domain.model import Notice, Receipt, to_iso
from notifier.errors import OutcomeUnknown, Permanent


class OutboxSettings(ChannelSettings):
    path: str = "var/outbox.jsonl"


class OutboxChannel(Channel):
    type_name = "outbox"
    settings_model = OutboxSettings
    settings: OutboxSettings

    @property
    def path(self) -> Path:
        return Path(self.settings.path)

    def render(self, notice: Notice) -> Rendering:
        text = self.context.templates.render(
            self.type_name,
            "update",
            self.language,
            incident=notice.incident,
            update=notice.update,
            text=notice.update.text(self.language, self.context.page.language),
            url=notice.page_url,
            marker=notice.marker,
        )
        return Rendering(parts=(text,), language=self.language)

    def send(self, notice: Notice, rendering: Rendering) -> Receipt:
        record = {
            "notice_id": notice.id,
            "marker": notice.marker,
            "channel": self.name,
            "incident_id": notice.incident.id,
            "status": notice.update.status,
            "text": rendering.text,
            "at": to_iso(self.context.clock.now()),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        written = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a crash mid-write left a torn line: never glue a record onto it
                os.write(fd, line)
                written = True
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if written:  # the line is in the file (maybe not on disk): reconcile, never write it twice
                raise OutcomeUnknown(f"outbox {self.path} written but not synced: {exc.strerror}") from exc
            raise Permanent(f"cannot append to outbox {self.path}: {exc.strerror}; fix the path or its "
                            "permissions, then run `notifier deliveries retry`") from exc
        return Receipt(remote_id=notice.id, url=f"file://{self.path.resolve()}#{notice.id}")

    def reconcile(self, notice: Notice, since: float | None = None) -> Receipt | None:
        if not self.path.exists():
            return None
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if notice.id in line:
                    try:
                        if json.loads(line).get("notice_id") == notice.id:
                            return Receipt(remote_id=notice.id, url=f"file://{self.path.resolve()}#{notice.id}")
                    except json.JSONDecodeError:
                        continue  # a torn last line from a crash mid-write is not a post
        return None

    def read_all(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
