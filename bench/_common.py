"""What the API benchmarks (``webhooks.py``, ``staff_api.py``) share: a private Redis, the API server in its
own process, its CPU from /proc, a minimal keep-alive HTTP client, and one teardown for all of it.

Not a benchmark itself (``run_all.py`` skips files starting with ``_``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from notifier.store.local_redis import LocalRedis, free_port  # noqa: E402
from tests.support import stop_process  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process: CPU cost per request does not depend on what else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


class Rig:
    """A temporary directory and the processes a benchmark starts in it, torn down together (in reverse
    order of start, each given 10 s to exit after SIGTERM and then killed, the directory removed), even
    when one of them does not stop."""

    def __init__(self, prefix: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc

    def redis(self, fsync: str = "always") -> int:
        """A redis-server with AOF and ``appendfsync fsync`` (``always``: the shipped policy); its port."""
        server = LocalRedis(self.tmp, appendfsync=fsync)  # the project's own private-Redis command line
        self.spawn(server.command(), stdout=subprocess.DEVNULL)
        return server.port

    def api(self, script: str, config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        """``script --serve CONFIG PORT`` (the benchmark's own server side) in its own process, once it listens."""
        port = free_port()
        proc = self.spawn([sys.executable, script, "--serve", str(config), str(port)],
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT)
        wait_port(port, proc)
        return proc, port

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def serve_api(config: str, port: int, add_routes: Callable[[Any, Any], None]) -> None:
    """The server side of a benchmark: the API as ``notifier api`` builds it (``create_app(settings=...)``,
    the real Celery dispatcher), plus the benchmark's own routes (``add_routes(api, settings)``), served by
    one uvicorn worker."""
    import uvicorn

    from notifier.api import create_app
    from notifier.config_loader import load_settings

    settings = load_settings(config)
    api = create_app(settings=settings)
    add_routes(api, settings)
    uvicorn.run(api, host="127.0.0.1", port=port, log_level="warning", server_header=False)


def py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` until SIGINT (``.svg``: a flame graph; anything else: collapsed stacks, one
    per line, for ``bench/pyspy_summary.py``). ``--gil``: only the thread running Python is sampled."""
    fmt = "flamegraph" if out.endswith(".svg") else "raw"
    return subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                             "record", "-p", str(pid), "-o", out, "-f", fmt, "-r", "200", "--gil", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Conn:
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost less CPU than the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str, extra: str = "") -> int:
        head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        for _ in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(head + body)
            status_line = await self.reader.readline()
            if status_line:
                break
            # the server closed an idle keep-alive connection (uvicorn: after 5 s); open a new one
            self.writer.close()
            self.reader = self.writer = None
        else:
            raise ConnectionError("the server closed the connection twice")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])
