"""A private redis-server with AOF: for `make run` when no redis.url is configured, and for the tests.

It writes its port to ``<dir>/port`` so every process of one installation (api, worker, beat, CLI)
finds the same server. ``appendfsync always``: a write that returned is on disk, so an event we
acknowledged survives a SIGKILL of Redis itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from notifier.config import Settings
from notifier.errors import StoreUnavailable

INSTALL_HINT = (
    "redis-server is not installed; install it (Debian/Ubuntu: `sudo apt-get install redis-server`, "
    "macOS: `brew install redis`) or set redis.url in the config to an existing Redis"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    def __init__(self, data_dir: str | Path, port: int | None = None, appendfsync: str = "always",
                 password: str | None = None, extra_args: list[str] | None = None) -> None:
        self.dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.password = password  # None: no AUTH (the tests' throwaway servers)
        self.extra_args = list(extra_args or [])  # e.g. --replicaof 127.0.0.1 <port> (Sentinel setups)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StoreUnavailable(INSTALL_HINT)
        return [
            binary, *([str(self._auth_file())] if self.password else []),
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--maxmemory-policy", "noeviction", "--logfile", str(self.dir / "redis.log"), *self.extra_args,
        ]

    def _auth_file(self) -> Path:
        """The password goes to redis-server in a 0600 config file, not on its command line, where any
        local user could read it in ps or /proc/<pid>/cmdline."""
        path = self.dir / "auth.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as conf:
            conf.write(f'requirepass "{self.password}"\n')
        os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
        return path

    def start(self, timeout: float = 10.0) -> LocalRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # its AOF holds incidents and console sessions: this user's only
        command = self.command()
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            umask=0o077,  # the AOF and redis.log it creates: 0600
        )
        (self.dir / "port").write_text(str(self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                logfile = self.dir / "redis.log"
                log = logfile.read_text(errors="replace")[-500:] if logfile.exists() else ""
                raise StoreUnavailable(f"redis-server exited at start; its log ends: {log}")
            if _answers(self.port, self.password):
                return self
            time.sleep(0.05)
        raise StoreUnavailable(f"redis-server on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does. AOF (fsync always) keeps every acknowledged write."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> LocalRedis:
        self.kill()
        return self.start()


def _answers(port: int, password: str | None = None) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        if password:
            sock.sendall(b"AUTH %s\r\n" % password.encode())
            if not sock.recv(64).startswith(b"+OK"):
                return False
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


def private_password(settings: Settings, create: bool = False) -> str | None:
    """The private Redis's password (``<data_dir>/password``, 0600, made on first start like the demo
    token), or None for a server started before passwords existed."""
    path = private_dir(settings) / "password"
    if not path.exists():
        if not create:
            return None
        os.makedirs(private_dir(settings), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24))
    os.chmod(path, 0o600)
    return path.read_text().strip() or None


def private_dir(settings: Settings) -> Path:
    return Path(settings.redis.data_dir)


def private_url(settings: Settings) -> str:
    """The URL of this installation's private Redis (started by `notifier run` / `make run`)."""
    port_file = private_dir(settings) / "port"
    if not port_file.exists():
        raise StoreUnavailable(
            f"no Redis configured and no private one running ({port_file} is missing); run `make run` "
            "(or `notifier run`), or set redis.url in the config"
        )
    password = private_password(settings)
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{int(port_file.read_text())}/0"


def ensure_private(settings: Settings) -> LocalRedis | None:
    """Start the private Redis unless it is already answering. None when we reused a running one."""
    port_file = private_dir(settings) / "port"
    password = private_password(settings, create=True)
    if port_file.exists() and _answers(int(port_file.read_text()), password):
        return None
    os.makedirs(private_dir(settings), exist_ok=True)
    return LocalRedis(private_dir(settings), password=password).start()
