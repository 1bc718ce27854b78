"""The official socket.io-client on Node (``tests/js/tabs.mjs``), as the drain and apigateway tests and their
benchmarks drive it: many tabs in one process."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIENT_SCRIPT = Path(__file__).resolve().parent / "js" / "tabs.mjs"
EVENT_TIMEOUT = 20.0


class NodeTabs:
    """``tabs.mjs``: one or more tabs of socket.io-client, and what they observed, in order.

    ``token`` is one token for every tab, ``-`` for none, or ``@path`` to a file of tokens, one per line (tab
    ``i`` uses token ``i`` modulo their number). ``spacing`` milliseconds pass between two tabs' ``io()``.
    """

    def __init__(self, url: str, token: str, tabs: int = 1, spacing: float = 0, timeout: float = EVENT_TIMEOUT) -> None:
        self.process = subprocess.Popen(
            ["node", str(CLIENT_SCRIPT), url, token, str(tabs), str(spacing)],
            cwd=CLIENT_SCRIPT.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[dict[str, Any]] = []
        self._returned: set[int] = set()
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda seen: seen["kind"] == "started", timeout)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """The first observation not returned before for which ``predicate`` holds, in the order of arrival."""
        for index, seen in enumerate(self.seen):
            if index not in self._returned and predicate(seen):
                self._returned.add(index)
                return seen
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                seen = self._lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError(f"not observed within {timeout}s; seen: {self.seen}") from None
            if seen is None:
                assert self.process.stderr is not None
                raise AssertionError(f"node exited; seen: {self.seen}; stderr: {self.process.stderr.read()}")
            self.seen.append(seen)
            if predicate(seen):
                self._returned.add(len(self.seen) - 1)
                return seen

    def wait_kind(self, kind: str, tab: int | None = None, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        return self.wait_for(lambda seen: seen["kind"] == kind and (tab is None or seen["tab"] == tab), timeout)

    def wait_connected(self, tabs: int = 1) -> None:
        for tab in range(tabs):
            self.wait_kind("connect", tab)

    def drain(self) -> list[dict[str, Any]]:
        """Read what has arrived so far without waiting."""
        while True:
            try:
                seen = self._lines.get_nowait()
            except queue.Empty:
                return self.seen
            if seen is None:
                return self.seen
            self.seen.append(seen)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [seen for seen in self.drain() if seen["kind"] == kind]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
