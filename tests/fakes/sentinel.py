"""Redis Sentinel on loopback for tests: a master and a replica (redis-server with AOF, the same
LocalRedis the service uses) and three Sentinels (``redis-server <conf> --sentinel``), each on a free
port. Fast timings (down after 1 s) so a failover takes seconds, not the production default's 30 s."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from notifier.store.local_redis import LocalRedis, free_port
from notifier.store.redis_store import sentinel_retry
from tests.support import wait_for

MASTER_NAME = "notifier"
DOWN_AFTER_MS = 1000


class SentinelProc:
    def __init__(self, data_dir: Path, master_port: int, quorum: int, password: str | None = None) -> None:
        self.dir = data_dir
        self.port = free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProc:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "sentinel.conf"
        if not conf.exists():  # Sentinel rewrites its own file (the current master, the known peers)
            lines = [
                f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", f"logfile {self.dir / 'sentinel.log'}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {self.quorum}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} 4000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                *([f'requirepass "{self.password}"'] if self.password else []),
            ]
            conf.write_text("\n".join(lines) + "\n")
            conf.chmod(0o600)
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/apt-test.txt)"
        self.proc = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL,  # noqa: S603
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._answers, timeout=10, what=f"Sentinel on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        # no retries with backoff (redis-py's default): a dead Sentinel is skipped at once (sentinel_retry)
        return redis.Redis(port=self.port, password=self.password, decode_responses=True, socket_timeout=2,
                           retry=sentinel_retry())

    def _answers(self) -> bool:
        with contextlib.suppress(redis.RedisError), self.client() as c:
            return bool(c.ping())
        return False

    def kill(self) -> None:
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


class SentinelCluster:
    """``servers[0]`` starts as master, the others as its replicas; three Sentinels, quorum 2."""

    def __init__(self, data_dir: Path, sentinel_password: str | None = None, replicas: int = 1) -> None:
        master = LocalRedis(data_dir / "redis-0")
        self.servers = [master] + [
            LocalRedis(data_dir / f"redis-{i + 1}", extra_args=["--replicaof", "127.0.0.1", str(master.port)])
            for i in range(replicas)]
        self.sentinels = [SentinelProc(data_dir / f"sentinel-{i}", master.port, 2, sentinel_password)
                          for i in range(3)]
        self.sentinel_password = sentinel_password

    def start(self) -> SentinelCluster:
        for server in self.servers:
            server.start()
        wait_for(lambda: self.replicas_of(self.servers[0]) >= len(self.servers) - 1, timeout=15,
                 what="the replicas' first sync")
        for s in self.sentinels:
            s.start()
        # every Sentinel has found the replica and its two peers: only then can a quorum elect a leader
        wait_for(lambda: all(self._sees_all(s) for s in self.sentinels), timeout=20,
                 what="the Sentinels to discover each other and the replica")
        return self

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.sentinels]

    def _sees_all(self, s: SentinelProc) -> bool:
        with contextlib.suppress(redis.RedisError), s.client() as c:
            info = c.sentinel_master(MASTER_NAME)
            return (int(info.get("num-slaves", 0)) >= len(self.servers) - 1
                    and int(info.get("num-other-sentinels", 0)) >= 2)
        return False

    @staticmethod
    def replicas_of(server: LocalRedis) -> int:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=server.port, socket_timeout=2) as c:
            info = c.info("replication")
            return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                       and v.get("state") == "online")
        return 0

    def master_port(self) -> int | None:
        """The master's port as the Sentinels that answer report it (None if none answers)."""
        for s in self.sentinels:
            with contextlib.suppress(redis.RedisError), s.client() as c:
                addr = c.sentinel_get_master_addr_by_name(MASTER_NAME)
                if addr:
                    return int(addr[1])
        return None

    def server_on(self, port: int) -> LocalRedis:
        return next(s for s in self.servers if s.port == port)

    def wait_failover(self, old_port: int, timeout: float = 30) -> tuple[int, float]:
        """Wait until the Sentinels name another master that answers as one; its port and when."""
        def promoted() -> int | None:
            port = self.master_port()
            if port is None or port == old_port:
                return None
            with contextlib.suppress(redis.RedisError), redis.Redis(port=port, socket_timeout=2) as c:
                if c.info("replication").get("role") == "master":
                    return port
            return None

        port = wait_for(promoted, timeout=timeout, what="Sentinel to promote the replica")
        return int(port), time.monotonic()

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def sentinel_cluster(data_dir: Path, sentinel_password: str | None = None,
                     replicas: int = 1) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(data_dir, sentinel_password, replicas)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
