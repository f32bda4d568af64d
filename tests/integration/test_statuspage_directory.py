"""The directory target: publishes flip a symlink, so readers over HTTP never see a partial site."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from notifier.errors import Permanent
from notifier.statuspage.generator import render_site
from notifier.statuspage.publish import DirectoryTarget
from notifier.statuspage.serve import serve_in_thread
from tests.fakes.statuspage_model import NOW, sample_snapshot, update

pytestmark = pytest.mark.integration


def site_for(version: int) -> dict[str, bytes]:
    """A full site whose every page says which version it is, padded so writes take a while."""
    snap = sample_snapshot()
    inc = snap.incidents[0]
    inc.name = f"IMAP outage v{version}"
    inc.updates.append(
        update("inc2", 3, "monitoring", f"version {version} " + "x" * 20000, NOW + timedelta(seconds=version))
    )
    return render_site(snap, NOW + timedelta(seconds=version))


def test_concurrent_readers_never_see_a_partial_site(tmp_path: Path) -> None:
    root = tmp_path / "site"
    target = DirectoryTarget(root, keep_releases=3)
    target.publish(site_for(0), NOW)
    server = serve_in_thread(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    seen: set[str] = set()
    fetches = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal fetches
        while not stop.is_set():
            try:
                index = urllib.request.urlopen(base + "index.html", timeout=5).read().decode()
                summary = json.loads(urllib.request.urlopen(base + "api/v2/summary.json", timeout=5).read())
                page = urllib.request.urlopen(base + "incidents/inc2.html", timeout=5).read().decode()
            except (urllib.error.URLError, ValueError) as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            fetches += 1
            if not index.rstrip().endswith("</html>") or not page.rstrip().endswith("</html>"):
                problems.append("truncated page")
            versions = {part.split("<", 1)[0] for part in index.split("IMAP outage v")[1:]}
            if len(versions) != 1:
                problems.append(f"index mixes versions {versions}")
            seen.update(versions)
            if summary["page"]["id"] != "pg1":
                problems.append("bad summary")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for version in range(1, 16):
            target.publish(site_for(version), NOW + timedelta(seconds=version))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        server.shutdown()
    assert problems == []
    assert fetches > 0 and len(seen) > 1  # readers really overlapped the publishes
    assert "IMAP outage v15" in (root / "index.html").read_text()
    assert target.settle(60), "the background prune ended"
    releases = [p for p in target.releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(releases) == 3  # older releases pruned
    assert root.is_symlink() and target.current_release() in releases


def test_older_releases_are_pruned_after_the_publish_not_inside_it(tmp_path: Path) -> None:
    """Deleting a release (~2,000 unlinks on a real site) is not on the publish's path: each publish
    returns with its release live while the prune is held back; once it may run, the newest
    ``keep_releases`` are what is left."""
    may_prune = threading.Event()

    class HeldPrune(DirectoryTarget):  # the real prune, started only when the test says so
        def _prune(self) -> None:
            assert may_prune.wait(60)
            super()._prune()

    target = HeldPrune(tmp_path / "site", keep_releases=2)
    results = [target.publish({"index.html": f"v{i}".encode()}, NOW + timedelta(seconds=i)) for i in range(5)]

    def names() -> list[str]:
        return sorted(p.name for p in target.releases.iterdir() if p.is_dir() and not p.name.startswith("."))

    assert names() == sorted(r.release for r in results)  # nothing pruned yet, and no publish waited for it
    assert target.current_release() == (target.releases / results[-1].release).resolve()
    assert (tmp_path / "site" / "index.html").read_bytes() == b"v4"
    assert not target.settle(0)  # a prune is pending
    may_prune.set()
    assert target.settle(60)
    assert names() == sorted(r.release for r in results[-2:])
    assert (tmp_path / "site" / "index.html").read_bytes() == b"v4"


def test_a_crashed_builds_staging_goes_once_an_hour_old_by_the_file_systems_clock(tmp_path: Path) -> None:
    """Not by this process's clock (an NFS server's may differ; the suite's shifted run moves ours)."""
    target = DirectoryTarget(tmp_path / "site")
    target.publish({"index.html": b"v0"}, NOW)
    assert target.settle(60)
    stale, fresh = target.releases / ".tmp-crashed", target.releases / ".tmp-running"
    for d in (stale, fresh):
        (d / "static").mkdir(parents=True)
    fs_now = fresh.stat().st_mtime  # the file system's own time, just now
    os.utime(stale, (fs_now - 7200, fs_now - 7200))
    target.publish({"index.html": b"v1"}, NOW + timedelta(seconds=1))
    assert target.settle(60)
    assert not stale.exists() and fresh.exists()


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path / "site")
    target.publish(site_for(5), NOW + timedelta(seconds=5))
    result = target.publish(site_for(2), NOW + timedelta(seconds=2))  # a slow worker finishing late
    assert result.written == 0
    assert "IMAP outage v5" in (tmp_path / "site" / "index.html").read_text()


def test_a_real_directory_in_the_way_is_a_permanent_error_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    with pytest.raises(Permanent, match="is not a symlink"):
        DirectoryTarget(tmp_path / "site").publish(site_for(1), NOW)


def test_unwritable_location_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(Permanent, match="cannot write the status page"):
        DirectoryTarget(tmp_path / "file" / "site").publish(site_for(1), NOW)


def test_unchanged_pages_are_hard_linked_from_the_live_release_and_changed_ones_rewritten(
    tmp_path: Path,
) -> None:
    from notifier.statuspage.generator import RenderCache

    snap = sample_snapshot()
    cache = RenderCache()
    target = DirectoryTarget(tmp_path / "site")
    first = target.publish(render_site(snap, NOW, cache), NOW)
    old_release = target.releases / first.release
    later = NOW + timedelta(minutes=1)
    snap.incidents[0].updates.append(update("inc2", 3, "monitoring", "Watching closely.", later))
    second = target.publish(render_site(snap, later, cache), later)
    new_release = target.releases / second.release
    same = (old_release / "incidents/inc1.html").stat().st_ino == (new_release / "incidents/inc1.html").stat().st_ino
    changed = (old_release / "incidents/inc2.html").stat().st_ino != (new_release / "incidents/inc2.html").stat().st_ino
    assert same and changed
    assert "Watching closely." in (tmp_path / "site/incidents/inc2.html").read_text()
    assert "Watching closely." not in (old_release / "incidents/inc2.html").read_text()
    assert (tmp_path / "site/incidents/inc1.html").read_bytes() == render_site(snap, later)["incidents/inc1.html"]


def test_a_fresh_process_links_files_whose_content_is_unchanged(tmp_path: Path) -> None:
    files = site_for(1)
    first = DirectoryTarget(tmp_path / "site").publish(files, NOW)
    changed = dict(files)
    changed["index.html"] = files["index.html"].replace(b"IMAP outage v1", b"IMAP outage v2")
    target = DirectoryTarget(tmp_path / "site")  # a new process: no memory of the last publish
    second = target.publish({k: bytes(v) for k, v in changed.items()}, NOW + timedelta(seconds=1))
    old, new = target.releases / first.release, target.releases / second.release
    assert (old / "history.html").stat().st_ino == (new / "history.html").stat().st_ino
    assert (old / "index.html").stat().st_ino != (new / "index.html").stat().st_ino
    assert (tmp_path / "site" / "index.html").read_bytes() == changed["index.html"]
    assert {p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()} == set(files) | {".release.json"}


def test_equal_bytes_rendered_again_are_linked_not_rewritten(tmp_path: Path) -> None:
    # a rebuild without the RenderCache's objects (settings changed, cache dropped) gives equal bytes in new
    # objects: the target compares them, so only what really changed gets a new file
    files = site_for(1)
    target = DirectoryTarget(tmp_path / "site")
    first = target.publish(files, NOW)
    again = {k: bytes(bytearray(v)) for k, v in files.items()}  # equal, never the same objects
    again["index.html"] = files["index.html"].replace(b"IMAP outage v1", b"IMAP outage v9")
    second = target.publish(again, NOW + timedelta(seconds=1))
    old, new = target.releases / first.release, target.releases / second.release
    linked = [rel for rel in files if (old / rel).stat().st_ino == (new / rel).stat().st_ino]
    assert sorted(linked) == sorted(set(files) - {"index.html"})
    assert all((new / rel).read_bytes() == data for rel, data in again.items())


def test_a_build_killed_midway_leaves_the_live_site_whole_and_the_next_publish_repairs_damage(tmp_path: Path) -> None:
    """A crash-like interruption: a publish SIGKILLed while it writes its release, and a live file
    damaged (as a power loss can leave an unsynced file on a filesystem without a journal)."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "site"
    files = site_for(1)
    DirectoryTarget(root).publish(files, NOW)
    script = (
        "import sys, time\n"
        "from datetime import timedelta\n"
        "import notifier.statuspage.generator as g\n"
        "from notifier.statuspage.publish import DirectoryTarget\n"
        "from tests.integration.test_statuspage_directory import site_for, NOW\n"
        "files = site_for(2)\n"
        "real = g.write_files\n"
        "def slow(f, out, *a):\n"
        "    half = dict(list(f.items())[: len(f) // 2])\n"
        "    real(half, out, *a)\n"
        "    print('half', flush=True)\n"
        "    time.sleep(60)\n"
        "import notifier.statuspage.publish as p\n"
        "p.write_files = slow\n"
        f"DirectoryTarget({str(root)!r}).publish(files, NOW + timedelta(seconds=2))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert child.stdout is not None and child.stdout.readline().strip() == "half"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    target = DirectoryTarget(root)  # the restarted worker
    assert list(target.releases.glob(".tmp-*"))  # the half release is there, but nobody serves it
    assert all((root / rel).read_bytes() == data for rel, data in files.items())
    (root / "history.html").write_bytes(b"")  # damaged in place (the live release's own inode)
    later = site_for(3)
    result = target.publish(later, NOW + timedelta(seconds=3))
    new = target.releases / result.release
    assert all((new / rel).read_bytes() == data for rel, data in later.items())
    assert (root / "history.html").read_bytes() == later["history.html"]


def test_the_releases_directory_asks_the_filesystem_to_spread_releases(tmp_path: Path) -> None:
    import fcntl
    import struct

    from notifier.statuspage import publish

    probe = tmp_path / "probe"
    probe.mkdir()
    if not publish.spread_subdirectories(probe):
        pytest.skip("this filesystem has no top-directory flag (not ext2/3/4)")
    target = DirectoryTarget(tmp_path / "site")
    target.publish(site_for(1), NOW)
    fd = os.open(target.releases, os.O_RDONLY)
    try:
        buf = bytearray(struct.calcsize("l"))
        fcntl.ioctl(fd, publish._FS_IOC_GETFLAGS, buf, True)
    finally:
        os.close(fd)
    assert struct.unpack_from("i", buf)[0] & publish._TOPDIR_FL
