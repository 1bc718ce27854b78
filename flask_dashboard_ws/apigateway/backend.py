"""The app's state with ``DASHBOARD_WS_BACKEND = "apigateway"``: emits go to the user's API Gateway connections.

No process holds a socket: an emit looks the user's connections up in the connections table and posts the
event to each through API Gateway, from whichever process emits (a Lambda, a worker, a cron job, the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..emitter import Outgoing, log_dropped
from ..envelope import SizeLimit
from ..events import EventType
from ..log import logger
from ..metrics import Metrics
from . import packets
from .aws import ApiGatewayUnavailable, client
from .management import ManagementApi, Outcome, Posted
from .table import ConnectionTable

# API Gateway's largest message (aws-apigateway.md); AWS closes a connection with 1009 above it.
APIGATEWAY_MAX_MESSAGE = 128 * 1024


@dataclass
class ApiGatewayState:
    """What one app needs to reach its users' connections; kept in ``app.extensions["dashboard_ws"]``."""

    settings: Settings
    table: ConnectionTable = field(init=False)
    api: ManagementApi = field(init=False)
    event_limit: SizeLimit = field(init=False)
    metrics: Metrics | None = field(init=False, default=None)  # this process's emits only: no socket is here

    def __post_init__(self) -> None:
        aws = self.settings.apigateway
        assert aws is not None
        self.table = ConnectionTable(client("dynamodb", aws), aws.table, aws.user_index)
        self.api = ManagementApi(client("apigatewaymanagementapi", aws, endpoint_url=aws.endpoint), aws.concurrency)
        self.event_limit = event_limit(self.settings)
        if self.settings.metrics_path is not None:
            self.metrics = Metrics(dict)

    def deliver(self, outgoing: Outgoing) -> None:
        """Post the event to every connection of its user; raises :class:`ApiGatewayUnavailable`."""
        text = self.event_packet(outgoing)
        self.for_user(outgoing, lambda connection_id: self.post(connection_id, text, outgoing))

    def end_user(self, outgoing: Outgoing) -> None:
        """``disconnect_user``: the error event, then a namespace disconnect (no reconnect), then close."""
        text = self.event_packet(outgoing)
        self.for_user(outgoing, lambda connection_id: self.end(connection_id, [text], outgoing))

    def for_user(self, outgoing: Outgoing, work: Callable[[str], Any]) -> None:
        """Run ``work`` on each connection of the user; an outage on any is raised once all have had their turn."""
        user_id = str(outgoing.user_id)
        connection_ids = self.table.of_user(user_id)
        outages = [result for result in self.api.each(_catching(work), connection_ids) if result is not None]
        if outages:
            raise ApiGatewayUnavailable(
                f"{len(outages)} of {len(connection_ids)} connections of user {user_id} did not get the "
                f"{outgoing.envelope['type']} event: {outages[0]}"
            )

    def post(self, connection_id: str, text: str, outgoing: Outgoing | None = None) -> Posted:
        """Post one message; forget a connection that is gone, and log a post that failed."""
        posted = self.api.post(connection_id, text)
        if posted.outcome is Outcome.GONE:
            self.forget(connection_id)
        elif posted.outcome is Outcome.FAILED and outgoing is not None:
            log_dropped(self, outgoing, "post_failed", posted.error, connection_id=connection_id, status=posted.status)
        return posted

    def end(self, connection_id: str, texts: list[str], outgoing: Outgoing | None = None) -> None:
        """Send ``texts`` and a namespace disconnect, close the connection and delete its item."""
        for text in [*texts, packets.disconnect(self.settings.namespace)]:
            if self.post(connection_id, text, outgoing).outcome is Outcome.GONE:
                return
        self.close(connection_id)

    def close(self, connection_id: str) -> None:
        """Close the connection (the client sees its transport close) and delete its item."""
        self.api.close(connection_id)
        self.table.remove(connection_id)

    def forget(self, connection_id: str) -> None:
        """API Gateway answered 410: the connection is closed and its ``$disconnect`` may never come."""
        connection = self.table.remove(connection_id)
        logger.info(
            "connection_gone",
            connection_id=connection_id,
            user_id=connection.user_id if connection else None,
        )

    def event_packet(self, outgoing: Outgoing) -> str:
        envelope = outgoing.envelope
        return packets.event(self.settings.namespace, envelope["type"], envelope)


def event_limit(settings: Settings) -> SizeLimit:
    """``DASHBOARD_WS_MAX_EVENT_BYTES``, or less when API Gateway's 128 KB message would not hold the packet."""
    framing = max(packets.event_overhead(settings.namespace, kind.value) for kind in EventType)
    apigateway_limit = APIGATEWAY_MAX_MESSAGE - framing
    if settings.max_event_bytes <= apigateway_limit:
        return SizeLimit(settings.max_event_bytes)
    return SizeLimit(apigateway_limit, "API Gateway's 128 KB message limit less the Socket.IO framing")


def _catching(work: Callable[[str], Any]) -> Callable[[str], ApiGatewayUnavailable | None]:
    """``work`` that returns an outage instead of raising it, so that one bad post does not stop the others."""

    def run(connection_id: str) -> ApiGatewayUnavailable | None:
        try:
            work(connection_id)
        except ApiGatewayUnavailable as exc:
            return exc
        return None

    return run
