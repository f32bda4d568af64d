"""The directory target's durable publish: the order of fsyncs and renames on a real temp directory.

A power loss may persist a rename before the data it points at (ext4), so every file and directory of a
release must be fsynced before the symlink ``<path>`` is flipped to it, and the directory holding ``<path>``
after the flip. os.fsync, os.replace and os.symlink are wrapped to record the order; they still run.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from tests.fakes.statuspage_model import NOW, sample_snapshot, update

Key = tuple[int, int]


def key(path: Path) -> Key:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


class Calls:
    """fsync by (device, inode) of the descriptor, replace and symlink by destination path, in call order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, object]] = []
        real_fsync, real_replace, real_symlink = os.fsync, os.replace, os.symlink

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            self.events.append(("fsync", (st.st_dev, st.st_ino)))
            real_fsync(fd)

        def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str], **kw: object) -> None:
            real_replace(src, dst, **kw)  # type: ignore[arg-type]
            self.events.append(("replace", os.fspath(dst)))

        def symlink(src: str | os.PathLike[str], dst: str | os.PathLike[str], *a: object, **kw: object) -> None:
            real_symlink(src, dst, *a, **kw)  # type: ignore[arg-type]
            self.events.append(("symlink", os.fspath(dst)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "symlink", symlink)

    def index(self, kind: str, what: object) -> int:
        return self.events.index((kind, what))

    def fsynced(self, start: int = 0, stop: int | None = None) -> set[Key]:
        return {k for kind, k in self.events[start:stop] if kind == "fsync"}  # type: ignore[misc]


def release_entries(release: Path) -> dict[Key, str]:
    """Every file and directory of a release, the release directory itself included."""
    return {key(p): p.relative_to(release).as_posix() for p in (release, *release.rglob("*"))}


def test_every_file_and_directory_of_a_release_is_fsynced_before_the_flip_and_the_flip_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = DirectoryTarget(tmp_path / "site")
    calls = Calls(monkeypatch)
    result = target.publish(render_site(sample_snapshot(), NOW), NOW)
    release = target.releases / result.release
    entries = release_entries(release)
    assert len([p for p in entries.values() if "/" in p]) > 3  # nested directories (incidents/, de/, api/v2/)

    flip = calls.index("replace", os.fspath(target.path))
    settled = calls.index("replace", os.fspath(release))  # staging -> final
    link = calls.index("symlink", os.fspath(target.path.with_name(f".site.{result.release}.tmp")))
    # every file (.release.json included) and every directory, before the rename that names the release
    missing = sorted(path for k, path in entries.items() if k not in calls.fsynced(stop=settled))
    assert missing == []
    # the rename is on disk (its directory fsynced) before the temp link is even created
    assert key(target.releases) in calls.fsynced(settled, link)
    assert settled < link < flip
    # and the flip itself: the directory holding <path>, after the replace
    assert key(tmp_path) in calls.fsynced(flip + 1)
    assert (tmp_path / "site" / "index.html").read_bytes() == render_site(sample_snapshot(), NOW)["index.html"]


def test_a_rebuild_fsyncs_only_what_it_wrote_and_its_linked_files_were_fsynced_before_their_first_flip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = sample_snapshot()
    target = DirectoryTarget(tmp_path / "site")
    calls = Calls(monkeypatch)
    first = target.publish(render_site(snap, NOW), NOW)
    first_flip = calls.index("replace", os.fspath(target.path))
    durable_before_first_flip = calls.fsynced(stop=first_flip)
    old = release_entries(target.releases / first.release)

    later = NOW + timedelta(minutes=1)
    snap.incidents[0].updates.append(update("inc2", 3, "monitoring", "Watching closely.", later))
    mark = len(calls.events)
    second = target.publish(render_site(snap, later), later)
    release = target.releases / second.release
    new = release_entries(release)
    flip = mark + calls.events[mark:].index(("replace", os.fspath(target.path)))
    this_publish = calls.fsynced(mark, flip)

    linked = {k for k in new if k in old}
    written = set(new) - linked
    assert {new[k] for k in linked} >= {"incidents/inc1.html", "de/incidents/inc1.html"}
    assert "incidents/inc2.html" in {new[k] for k in written}
    assert sorted(new[k] for k in written - this_publish) == []  # everything new is durable before the flip
    assert sorted(new[k] for k in linked - durable_before_first_flip) == []  # and the linked inodes were already
    assert sorted(new[k] for k in linked & this_publish) == []  # so they are not fsynced again
    assert key(tmp_path) in calls.fsynced(flip + 1)


def test_a_failed_fsync_is_a_permanent_error_and_the_live_release_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from notifier.errors import Permanent

    snap = sample_snapshot()
    target = DirectoryTarget(tmp_path / "site")
    first = target.publish(render_site(snap, NOW), NOW)

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    later = NOW + timedelta(minutes=1)
    snap.incidents[0].updates.append(update("inc2", 3, "monitoring", "Watching closely.", later))
    with pytest.raises(Permanent, match="Input/output error"):
        target.publish(render_site(snap, later), later)
    assert target.current_release() == (target.releases / first.release).resolve()
    assert "Watching closely." not in (tmp_path / "site" / "incidents/inc2.html").read_text()
