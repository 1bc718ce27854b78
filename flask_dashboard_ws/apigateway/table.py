"""The DynamoDB table of API Gateway connections: who each connection is, and where it is in its life.

One item per connection, keyed by ``connectionId``. ``userId`` is written only once the connection has
authenticated, so the user index (a global secondary index on ``userId``, keys only) lists exactly the
connections that may receive a user's events. ``status`` moves one way, each step a conditional write:

``connecting`` ($connect) → ``open`` (the open packet is claimed) → ``ready`` (authenticated) or ``refused``.

``$disconnect`` deletes the item, and no later write may create it again: every update requires the item to
exist. ``ttl`` (epoch seconds; enable TTL on it) removes items whose ``$disconnect`` never came, which AWS only
promises on a best-effort basis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config import APIGATEWAY_MAX_DURATION
from .aws import AWS_ERRORS, ApiGatewayUnavailable, describe, error_code

CONNECTING = "connecting"
OPEN = "open"
READY = "ready"
REFUSED = "refused"

# How long an item outlives the longest connection API Gateway allows, before TTL may delete it.
TTL_MARGIN = 3600


@dataclass(frozen=True)
class Handshake:
    """What ``$connect`` found in the handshake's query string, header or cookie (only it sees them).

    Either the verified ``user_id`` and ``expires_at``, or the ``reason`` the token was refused; never the token.
    """

    source: str
    user_id: str | None = None
    expires_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Connection:
    connection_id: str
    status: str
    connected_at: float
    pinged_at: float | None = None
    user_id: str | None = None
    expires_at: float | None = None
    handshake: Handshake | None = None


def _number(value: float) -> dict[str, str]:
    return {"N": repr(value)}


def _read_number(item: dict[str, Any], name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _read_string(item: dict[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _connection(item: dict[str, Any]) -> Connection:
    handshake = None
    source = _read_string(item, "handshakeSource")
    if source is not None:
        handshake = Handshake(
            source=source,
            user_id=_read_string(item, "handshakeUserId"),
            expires_at=_read_number(item, "handshakeExpiresAt"),
            reason=_read_string(item, "handshakeReason"),
        )
    return Connection(
        connection_id=item["connectionId"]["S"],
        status=item["status"]["S"],
        connected_at=float(item["connectedAt"]["N"]),
        pinged_at=_read_number(item, "pingedAt"),
        user_id=_read_string(item, "userId"),
        expires_at=_read_number(item, "expiresAt"),
        handshake=handshake,
    )


class ConnectionTable:
    """The connections table through a boto3 DynamoDB client; AWS failures raise :class:`ApiGatewayUnavailable`."""

    def __init__(self, client: Any, name: str, user_index: str) -> None:
        self.client = client
        self.name = name
        self.user_index = user_index

    def add(self, connection_id: str, now: float, handshake: Handshake | None) -> None:
        item = {
            "connectionId": {"S": connection_id},
            "status": {"S": CONNECTING},
            "connectedAt": _number(now),
            "ttl": {"N": str(int(now + APIGATEWAY_MAX_DURATION + TTL_MARGIN))},
        }
        if handshake is not None:
            item["handshakeSource"] = {"S": handshake.source}
            if handshake.user_id is not None:
                item["handshakeUserId"] = {"S": handshake.user_id}
            if handshake.expires_at is not None:
                item["handshakeExpiresAt"] = _number(handshake.expires_at)
            if handshake.reason is not None:
                item["handshakeReason"] = {"S": handshake.reason}
        self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(connectionId)")

    def claim_open(self, connection_id: str, now: float) -> bool:
        """Take the right to send the open packet; only the first of Lambda's deliveries gets it."""
        return self._move(connection_id, CONNECTING, OPEN, "pingedAt = :now", {":now": _number(now)})

    def get(self, connection_id: str) -> Connection | None:
        answer = self._call("get_item", Key=self._key(connection_id), ConsistentRead=True)
        return _connection(answer["Item"]) if "Item" in answer else None

    def authenticate(self, connection_id: str, user_id: str, expires_at: float | None, sid: str) -> bool:
        """Assign the connection to its user; False if it left or authenticated already."""
        sets, values = "userId = :user, sid = :sid", {":user": {"S": user_id}, ":sid": {"S": sid}}
        if expires_at is not None:
            sets += ", expiresAt = :expires"
            values[":expires"] = _number(expires_at)
        return self._move(connection_id, OPEN, READY, sets, values)

    def refuse(self, connection_id: str) -> bool:
        return self._move(connection_id, OPEN, REFUSED)

    def pinged(self, connection_id: str, now: float) -> bool:
        return self._update(
            connection_id, "SET pingedAt = :now", "attribute_exists(connectionId)", {":now": _number(now)}
        )

    def count_client_packet(self, connection_id: str) -> int | None:
        """Count one packet the server does not expect; the new count, or None if the connection is gone."""
        try:
            answer = self._call(
                "update_item",
                Key=self._key(connection_id),
                UpdateExpression="ADD clientPackets :one",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except _ConditionFailed:
            return None
        return int(answer["Attributes"]["clientPackets"]["N"])

    def remove(self, connection_id: str) -> Connection | None:
        """Delete the item; what it held, or None if it was gone already."""
        answer = self._call("delete_item", Key=self._key(connection_id), ReturnValues="ALL_OLD")
        return _connection(answer["Attributes"]) if "Attributes" in answer else None

    def of_user(self, user_id: str) -> list[str]:
        """The ids of the user's authenticated connections (the user index is eventually consistent)."""
        ids = []
        for page in self._query_user(user_id, Select="ALL_PROJECTED_ATTRIBUTES"):
            ids.extend(item["connectionId"]["S"] for item in page["Items"])
        return ids

    def count_of_user(self, user_id: str) -> int:
        return sum(page["Count"] for page in self._query_user(user_id, Select="COUNT"))

    def scan(self) -> Iterator[Connection]:
        """Every item, a page at a time (the sweeper's read)."""
        kwargs: dict[str, Any] = {"TableName": self.name}
        while True:
            page = self._call("scan", **kwargs)
            for item in page["Items"]:
                yield _connection(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query_user(self, user_id: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs.update(
            TableName=self.name,
            IndexName=self.user_index,
            KeyConditionExpression="userId = :user",
            ExpressionAttributeValues={":user": {"S": user_id}},
        )
        while True:
            page = self._call("query", **kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _move(
        self, connection_id: str, before: str, after: str, sets: str = "", values: dict[str, Any] | None = None
    ) -> bool:
        """Change ``status`` from ``before`` to ``after``, with more ``sets``; False if it was not ``before``."""
        expression = "SET #status = :after" + (f", {sets}" if sets else "")
        values = {**(values or {}), ":before": {"S": before}, ":after": {"S": after}}
        return self._update(connection_id, expression, "#status = :before", values, {"#status": "status"})

    def _update(
        self,
        connection_id: str,
        expression: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "Key": self._key(connection_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._call("update_item", **kwargs)
        except _ConditionFailed:
            return False
        return True

    @staticmethod
    def _key(connection_id: str) -> dict[str, Any]:
        return {"connectionId": {"S": connection_id}}

    def _call(self, operation: str, **kwargs: Any) -> Any:
        kwargs.setdefault("TableName", self.name)
        try:
            return getattr(self.client, operation)(**kwargs)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _ConditionFailed from None
            raise ApiGatewayUnavailable(
                f"the connections table {self.name!r} did not answer {operation}: {describe(exc)}"
            ) from None


class _ConditionFailed(Exception):
    """A conditional write found the item in another state (or gone)."""
