"""Redis for the tests: a private ``redis-server`` on its own port, and checks of the machine's Redis.

The private server is what the outage tests stop, restart (on the same port) and freeze; the tests that only
need a queue use the machine's Redis with a channel of their own, so they never see another run's messages
(pub/sub channels are not per database, so the channel is what keeps them apart; no test writes a key).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# The machine's Redis (CI's .ci/run starts one on 127.0.0.1:6379 if none is running).
SHARED_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def shared_redis_answers() -> bool:
    """Whether the machine's Redis (``SHARED_REDIS_URL``) answers ``PING``."""
    parts = urlsplit(SHARED_REDIS_URL)
    return answers_ping(parts.hostname or "127.0.0.1", parts.port or 6379)


NO_SHARED_REDIS = f"no Redis answers at {SHARED_REDIS_URL} (set REDIS_URL, or start redis-server; .ci/run does)"


def private_channel() -> str:
    return f"dashboard-ws-test-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis answers ``PING`` at ``host:port`` (a raw socket: no client library involved)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """``redis-server`` on 127.0.0.1 on a port of its own, without persistence, in ``workdir``."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.workdir = workdir
        self.options = options  # more redis-server arguments
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on a free port the first time, then always on that same port."""
        first = self.port == 0
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if first:
                self.port = free_port()
            if self._try_start(deadline):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log}")

    def _try_start(self, deadline: float) -> bool:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - closed with the process
        self._process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--daemonize", "no", *self.options],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        while time.monotonic() < deadline:
            if self._process.poll() is not None:  # the port was taken between free_port() and now
                return False
            if answers_ping("127.0.0.1", self.port, timeout=0.5):
                return True
            time.sleep(0.02)  # polling for readiness, bounded by the deadline
        self.stop()
        return False

    def stop(self) -> None:
        """Stop the server (its clients' connections close at once, as when Redis goes down)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and connects still succeed, but nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    @property
    def log(self) -> str:
        path = self.workdir / f"redis-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class PrivateRedisCluster:
    """A Redis Cluster of three masters (no replicas), each a :class:`PrivateRedis` on a port of its own, all
    slots assigned with ``redis-cli --cluster create``; its URL names the first node (``redis+cluster://``)."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        if shutil.which("redis-cli") is None:
            raise FileNotFoundError("redis-cli is not installed")
        self.nodes = [PrivateRedis(workdir, "--cluster-enabled", "yes", "--cluster-config-file",
                                   f"nodes-{index}.conf", "--cluster-node-timeout", "5000")
                      for index in range(nodes)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0",
                                  "--cluster-yes"], capture_output=True, text=True, timeout=START_TIMEOUT, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while not all(self._cluster_ok(node.port) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)  # polling for the condition, bounded by the deadline

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    @staticmethod
    def _cluster_ok(port: int) -> bool:
        info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True,
                              timeout=START_TIMEOUT, check=False)
        return "cluster_state:ok" in info.stdout


class BlackHoleProxy:
    """A TCP proxy in front of a Redis whose open connections can be made to swallow everything, with no reset:
    what a NAT or firewall that forgot the connection, or a failover, leaves a client with. Connections made
    after :meth:`black_hole` are forwarded as usual. Threads, one per direction of each connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self._sockets: list[socket.socket] = []
        self._holes: list[bool] = []  # per connection pair: swallowing
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="black-hole-proxy", daemon=True).start()

    def black_hole(self) -> None:
        """From now on, every connection open now drops what either side sends, and stays open."""
        with self._lock:
            self._holes = [True] * len(self._holes)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=START_TIMEOUT)
            except OSError:
                return
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                index = len(self._holes)
                self._holes.append(False)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, index), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, index: int) -> None:
        try:
            while data := source.recv(65536):
                if not self._holes[index]:
                    sink.sendall(data)
            if not self._holes[index]:
                sink.shutdown(socket.SHUT_WR)  # a close goes through, as the rest did
        except OSError:
            pass
