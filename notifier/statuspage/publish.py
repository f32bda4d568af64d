"""Publishing targets: where a rendered site ({relative path: bytes}) goes.

- ``DirectoryTarget``: atomic. Every publish writes a complete new release under
  ``<path>.releases/<id>/`` and then flips the symlink ``<path>`` to it with ``os.replace`` (a
  rename, atomic on POSIX), so a web server serving ``<path>`` shows either the old site or the new
  one, never a half-written mix. A release older than the one already live is not flipped in (two
  workers publishing at once: the newer snapshot wins).
- ``S3Target``: any S3-compatible store via ``endpoint_url``. Objects go up in the order assets,
  pages, JSON, feeds, ``index.html`` last, so the entry page never links to something not there yet;
  unchanged objects (same MD5 ETag) are skipped.

Errors are mapped to Transient/Permanent in ``classify_s3_error``; publishing is a function of state,
so re-sending after an unknown outcome is harmless.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from notifier.domain.model import to_iso
from notifier.errors import Permanent, Transient
from notifier.statuspage.generator import write_files

log = logging.getLogger(__name__)

META = ".release.json"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".js": "text/javascript; charset=utf-8",
}


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1], "application/octet-stream")


def upload_order(paths: Iterable[str]) -> list[str]:
    """Assets, pages, JSON, feeds, the language index pages, and the root ``index.html`` last."""

    def rank(path: str) -> tuple[int, str]:
        name = path.rsplit("/", 1)[-1]
        if path == "index.html":
            group = 6
        elif name == "index.html":
            group = 5
        elif path.startswith("static/"):
            group = 0
        elif path.endswith(".html"):
            group = 1
        elif path.endswith(".json"):
            group = 2
        elif path.endswith((".atom", ".rss")):
            group = 3
        else:
            group = 0
        return group, path

    return sorted(paths, key=rank)


@dataclass(frozen=True)
class PublishResult:
    target: str  # "directory" or "s3"
    release: str  # release id or s3 url of index.html
    url: str
    written: int
    skipped: int = 0


_TOPDIR_FL = 0x00020000  # FS_TOPDIR_FL, what ``chattr +T`` sets
_LONG = struct.calcsize("l")
_FS_IOC_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1  # _IOR('f', 1, long)
_FS_IOC_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2  # _IOW('f', 2, long)


def spread_subdirectories(path: str | os.PathLike[str]) -> bool:
    """Mark ``path`` as the top of unrelated trees (``chattr +T``), so ext4 places each new release in a
    block group of its own instead of next to its parent. Best effort: False where the filesystem has no
    such flag (tmpfs, XFS, not Linux) or we may not set it.

    Why: on ext4 without a journal the inode allocator passes over every inode freed in the last one to
    six minutes, one buffer lookup each, from the start of the group, for every file it creates. Where
    other programs (or our own pruning) create and delete files, creating a release's 2,000 files next to
    them cost 0.3-1 s of kernel CPU; in a group of its own 20-200 ms (docs/performance.md, "Status page on
    disk").
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        buf = bytearray(_LONG)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags = struct.unpack_from("i", buf)[0]
        if not flags & _TOPDIR_FL:
            struct.pack_into("i", buf, 0, flags | _TOPDIR_FL)
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, buf, True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, so the entries created, renamed or removed in it are on disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Fsyncs:
    """fsync and close descriptors on a few threads, and wait for all of them on leaving the ``with``.

    A disk completes many fsyncs at once: a release's 2,000 new files took 2.4-3.5 s fsynced one after
    another on this VM's ext4, 0.3 s on 16 threads (BENCHMARKS.md, "Durable directory publish"). At most
    ``in_flight`` descriptors are open at a time; the first fsync error is raised by ``__exit__``.
    """

    def __init__(self, threads: int = 16, in_flight: int = 256) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="statuspage-fsync")
        self._slots = threading.BoundedSemaphore(in_flight)
        self._done: list[Future[None]] = []

    def __call__(self, fd: int) -> None:
        """Take ``fd`` (a file or directory): it is fsynced and closed, even if this raises."""
        self._slots.acquire()
        try:
            self._done.append(self._pool.submit(self._sync, fd))
        except BaseException:
            self._slots.release()
            os.close(fd)
            raise

    def directory(self, path: str | os.PathLike[str]) -> None:
        self(os.open(path, os.O_RDONLY | os.O_DIRECTORY))

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
            self._slots.release()

    def __enter__(self) -> Fsyncs:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True)
        if kind is None:
            for done in self._done:
                done.result()


def release_directories(files: Iterable[str]) -> set[str]:
    """Every directory a release of ``files`` has (relative; "" is the release itself)."""
    dirs = {""}
    for rel in files:
        parent = rel.rpartition("/")[0]
        while parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs


class _Pruning:
    """One background thread per target that runs the prune while one is wanted: a request during a
    prune makes it run once more, never twice at once. After a fork (prefork workers) the child starts
    afresh: the parent's thread, and any lock it held, did not come along."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wanted = False
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def request(self, prune: Callable[[], None]) -> None:
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            self._wanted = True
            self._idle.clear()
            if self._thread is not None and self._thread.is_alive():
                return
            # not a daemon: a one-shot `notifier statuspage` build prunes before the interpreter exits
            self._thread = threading.Thread(target=self._run, args=(prune,), name="statuspage-prune")
            self._thread.start()

    def _run(self, prune: Callable[[], None]) -> None:
        while True:
            with self._lock:
                if not self._wanted:
                    self._thread = None
                    self._idle.set()
                    return
                self._wanted = False
            try:
                prune()
            except Exception:  # a prune that fails is retried by the next publish; never kill the thread
                log.exception("status page: pruning older releases failed")

    def settle(self, timeout: float | None = None) -> bool:
        if self._pid != os.getpid():  # a forked child: nothing of the parent's runs here
            return True
        return self._idle.wait(timeout)


class DirectoryTarget:
    def __init__(self, path: str | os.PathLike[str], keep_releases: int = 5, public_url: str = "") -> None:
        self.path = Path(path)
        self.releases = self.path.with_name(self.path.name + ".releases")
        self.keep = max(2, keep_releases)
        self.public_url = public_url
        self._last: tuple[Path | None, dict[str, bytes]] = (None, {})
        self._spread = False
        self._pruning = _Pruning()

    def current_release(self) -> Path | None:
        if not self.path.is_symlink():
            return None
        return (self.path.parent / os.readlink(self.path)).resolve()

    def _meta(self, release: Path | None) -> dict[str, Any]:
        try:
            return dict(json.loads((release / META).read_text())) if release else {}
        except (OSError, ValueError):
            return {}

    def publish(self, files: dict[str, bytes], now: datetime) -> PublishResult:
        if self.path.exists() and not self.path.is_symlink():
            raise Permanent(
                f"{self.path} exists and is not a symlink; the directory target owns that path (it flips a "
                f"symlink to {self.releases}/<id>). Move it away or choose another channels.<name>.path"
            )
        release_id = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(3)}"
        try:
            self.releases.mkdir(parents=True, exist_ok=True)
            if not self._spread:
                spread_subdirectories(self.releases)
                fsync_dir(self.path.parent)  # <path>.releases itself, if it was just created
                self._spread = True
            # Durable in this order (ext4 may persist a rename before the data it points at): every new file
            # and directory of the release, then the rename staging -> final, then the flip of <path>.
            staging = self.releases / f".tmp-{release_id}"
            with Fsyncs() as fsyncs:
                self._write(files, staging, fsyncs)  # hands over each file it wrote (not the linked ones)
                (staging / META).write_text(json.dumps({"id": release_id, "built_at": to_iso(now)}))
                fsyncs(os.open(staging / META, os.O_RDONLY))
                for rel in release_directories(files):
                    fsyncs.directory(staging / rel)
            final = self.releases / release_id
            os.replace(staging, final)
            fsync_dir(self.releases)
            with open(self.releases / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one flip at a time, so "newer wins" holds
                live = self._meta(self.current_release())
                if live.get("built_at") and live["built_at"] > (to_iso(now) or ""):
                    shutil.rmtree(final, ignore_errors=True)
                    return PublishResult("directory", live.get("id", ""), self.public_url, 0, len(files))
                link = self.path.with_name(f".{self.path.name}.{release_id}.tmp")
                os.symlink(os.path.relpath(final, self.path.parent), link)
                os.replace(link, self.path)  # the atomic moment
                fsync_dir(self.path.parent)  # and now it survives a power loss
            # Older releases go in the background (issue 14): the page is live and durable already, and
            # deleting one release (~2,000 unlinks) added 20-30 ms to every publish once there were
            # keep_releases of them. Outside the lock: it never touches the live release or a newer one.
            self._pruning.request(self._prune)
        except OSError as exc:
            raise Permanent(
                f"cannot write the status page to {self.path}: {exc.strerror or exc}; fix the path or its permissions"
            ) from exc
        return PublishResult("directory", release_id, self.public_url, len(files))

    def _write(self, files: dict[str, bytes], staging: Path, fsyncs: Fsyncs) -> None:
        """Write the release, hard-linking every file that is unchanged from the live release.

        Creating ~2,000 small files is the bulk of a build on a busy disk; a link is far cheaper.
        "Unchanged": the bytes we published last time (the very object, an incident page reused from
        the RenderCache, or equal bytes), or, in a fresh process, the same size and content as the
        live file.
        """
        last_dir, last_files = self._last
        live = self.current_release()
        same: set[str] = set()
        if live is not None and last_dir is not None and live == last_dir:
            for rel, data in files.items():
                prev = last_files.get(rel)
                if prev is data or prev == data:
                    same.add(rel)
        elif live is not None:
            src = str(live)  # plain strings: pathlib costs more than the check itself
            for rel, data in files.items():
                if self._unchanged(src, rel, data):
                    same.add(rel)
        # positional: the integration test's crash stand-in for write_files takes (files, out, *args)
        write_files(files, staging, str(live) if live is not None else None, frozenset(same), fsyncs)
        self._last = ((self.releases / staging.name.removeprefix(".tmp-")).resolve(), files)

    @staticmethod
    def _unchanged(live: str, rel: str, data: bytes) -> bool:
        try:
            path = f"{live}/{rel}"
            if os.stat(path).st_size != len(data):
                return False
            with open(path, "rb") as fh:
                return fh.read() == data
        except OSError:
            return False

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until no prune of older releases is pending or running (tests, a clean shutdown);
        False if one is still running after ``timeout`` seconds."""
        return self._pruning.settle(timeout)

    def _prune(self) -> None:
        # Older releases stay a while: a visitor who loaded index.html from one may still fetch its CSS.
        # The newest keep_releases stay (release ids sort by their snapshot's time, and a snapshot older
        # than the live one is never linked), and whatever is live now, whatever its name.
        try:
            done = sorted(
                (p for p in self.releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: p.name,
            )
            live = self.current_release()
        except OSError as exc:
            log.warning("status page: could not list %s to prune it: %s", self.releases, exc)
            return
        for old in done[: -self.keep]:
            if old.resolve() != live:
                shutil.rmtree(old, ignore_errors=True)
        # A staging directory left by a crashed build goes once it is an hour old, judged by the file
        # system's own clock (a file touched now: an NFS server's, not this host's, which may differ; and
        # under the test suite's shifted clock every live staging directory would look years old).
        try:
            stamp = self.releases / ".now"
            stamp.touch()
            fs_now = stamp.stat().st_mtime
        except OSError:
            return
        for tmp in self.releases.glob(".tmp-*"):
            try:
                if tmp.stat().st_mtime < fs_now - 3600:
                    shutil.rmtree(tmp, ignore_errors=True)
            except OSError:
                continue


class S3Target:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        cache_seconds: int = 60,
        asset_cache_seconds: int = 3600,
        public_url: str = "",
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.cache_seconds = cache_seconds
        self.asset_cache_seconds = asset_cache_seconds
        self.public_url = public_url

    def cache_control(self, path: str) -> str:
        seconds = self.asset_cache_seconds if path.startswith("static/") else self.cache_seconds
        return f"public, max-age={seconds}"

    def _live_updated_at(self) -> str | None:
        """``page.updated_at`` of the status.json already in the bucket (None when there is none)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + "api/v2/status.json")["Body"].read()
            return str(json.loads(body)["page"]["updated_at"])
        except self.client.exceptions.NoSuchKey:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # not ours or damaged: overwrite it

    def _existing_etags(self) -> dict[str, str]:
        etags: dict[str, str] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                etags[obj["Key"]] = obj.get("ETag", "").strip('"')
        return etags

    def publish(self, files: dict[str, bytes], now: datetime) -> PublishResult:
        try:
            live = self._live_updated_at()
            if live and live > (to_iso(now) or ""):
                # another worker already put up a newer state; uploading ours would roll the page back
                return PublishResult(
                    "s3", f"s3://{self.bucket}/{self.prefix}index.html", self.public_url, 0, len(files)
                )
            existing = self._existing_etags()
            written = skipped = 0
            for path in upload_order(files):
                key = self.prefix + path
                data = files[path]
                if existing.get(key) == hashlib.md5(data).hexdigest() and not path.endswith("index.html"):  # noqa: S324
                    skipped += 1  # same bytes already there (MD5 is the ETag of a single-part PUT)
                    continue
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type(path),
                    CacheControl=self.cache_control(path),
                )
                written += 1
        except Exception as exc:
            raise classify_s3_error(exc, self.bucket) from exc
        return PublishResult("s3", f"s3://{self.bucket}/{self.prefix}index.html", self.public_url, written, skipped)


_PERMANENT_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "AllAccessDisabled",
    "InvalidBucketName",
    "AccountProblem",
    "InvalidArgument",
    "AuthorizationHeaderMalformed",
}


def classify_s3_error(exc: Exception, bucket: str) -> Exception:
    """botocore errors -> Transient/Permanent (the one place this mapping happens)."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _PERMANENT_CODES or status in (400, 401, 403, 404):
            return Permanent(
                f"S3 bucket {bucket!r} refused the upload ({code or status}); check bucket, "
                "endpoint_url and the access keys"
            )
        retry = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
        return Transient(f"S3 said {code or status}", float(retry) if retry and retry.isdigit() else None)
    if isinstance(exc, NoCredentialsError):
        return Permanent("no S3 credentials: set access_key_id and secret_access_key (as ${ENV} references)")
    if isinstance(exc, EndpointConnectionError | BotoCoreError | OSError):
        return Transient(f"S3 endpoint unreachable ({exc.__class__.__name__})")
    return exc


def s3_client(
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    timeout: float = 10.0,
) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        # retries are the ledger's job; path style works with MinIO and every S3-compatible host
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )
