"""Posting to and closing API Gateway connections (the ``@connections`` management API), a bounded number at once.

Each post is one HTTPS request to ``DASHBOARD_WS_APIGATEWAY_ENDPOINT``. Its outcome is read from the HTTP status,
not the exception class: AWS answers a gone connection with 410 and ``GoneException``, the offline emulator
with a bare 410 that boto3 raises as a plain ``ClientError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from threading import Lock
from typing import Any, TypeVar

from .aws import AWS_ERRORS, ApiGatewayUnavailable, describe, status_of

T = TypeVar("T")

GONE_STATUS = 410
# The endpoint lacks the stage, or the role lacks execute-api:ManageConnections: every post would fail alike.
FORBIDDEN_STATUS = 403


class Outcome(enum.Enum):
    SENT = "sent"
    GONE = "gone"  # the connection is closed, or (right after $connect) not established yet
    FAILED = "failed"  # this post only: throttled (429), too large (413), an AWS error (5xx)


@dataclass(frozen=True)
class Posted:
    outcome: Outcome
    status: int | None = None
    error: str | None = None


class ManagementApi:
    """The connections API through a boto3 ``apigatewaymanagementapi`` client."""

    def __init__(self, client: Any, concurrency: int) -> None:
        self.client = client
        self.concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = Lock()

    def post(self, connection_id: str, text: str) -> Posted:
        """Send one WebSocket text message; raises :class:`ApiGatewayUnavailable` when AWS cannot be used."""
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=text.encode())
        except AWS_ERRORS as exc:
            return self._failed(exc, "post_to_connection")
        return Posted(Outcome.SENT)

    def close(self, connection_id: str) -> Posted:
        """Close the connection (the client sees its transport close); GONE if it was closed already."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except AWS_ERRORS as exc:
            return self._failed(exc, "delete_connection")
        return Posted(Outcome.SENT)

    def each(self, work: Callable[[str], T], connection_ids: Sequence[str]) -> list[T]:
        """``work`` for every connection, ``concurrency`` at a time (inline for one); results in order."""
        if len(connection_ids) <= 1:
            return [work(connection_id) for connection_id in connection_ids]
        return list(self._pool().map(work, connection_ids))

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dashboard-ws-post")
            return self._executor

    @staticmethod
    def _failed(exc: BaseException, operation: str) -> Posted:
        status = status_of(exc)
        if status == GONE_STATUS:
            return Posted(Outcome.GONE, status)
        if status is None or status == FORBIDDEN_STATUS:
            raise ApiGatewayUnavailable(f"API Gateway's connections API did not take {operation}: {describe(exc)}")
        return Posted(Outcome.FAILED, status, describe(exc))
