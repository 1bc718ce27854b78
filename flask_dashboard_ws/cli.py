"""``flask dashboard-ws emit``: send one event to one user from a shell, a cron job or a deploy script.

The command runs in a process that serves no socket, so the event reaches the user's sockets through the
message queue (or, with the ``apigateway`` backend, through API Gateway). Exit status: 0 once the backend took
the event (its ``eventId`` is printed on the last line of standard output), 2 for a bad invocation (unknown
type, invalid payload, unreadable or too deeply nested JSON), 1 when the backend cannot be reached or no
message queue is configured.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError
from socketio.pubsub_manager import PubSubManager

from . import emitter
from .emitter import DeliveryUnavailable
from .events import EventType, UnknownEventType, event_type
from .rooms import user_id_of

_TYPES = ", ".join(member.value for member in EventType)

dashboard_ws_cli = AppGroup("dashboard-ws", help="Real-time dashboard events (flask-dashboard-ws).")


@dashboard_ws_cli.command("emit")
@click.option("--user", "user_id", required=True, metavar="USER_ID", help="The user (JWT identity) whose sockets get it.")
@click.option("--type", "type_name", required=True, metavar="TYPE", help=f"The event type: {_TYPES}.")
@click.option(
    "--payload",
    required=True,
    metavar="JSON|@PATH|-",
    help="The payload as JSON text, @PATH to read it from a file, or - to read it from standard input.",
)
def emit_command(user_id: str, type_name: str, payload: str) -> None:
    """Validate a payload and send it to every socket of one user, through the message queue.

    \b
    flask dashboard-ws emit --user 42 --type dashboard:error \\
        --payload '{"code": "MAINTENANCE", "message": "Back at 14:00"}'
    """
    state = current_app.extensions["dashboard_ws"]
    data = _read_payload(payload)
    try:
        user_id_of(user_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--user'") from None
    try:
        kind = event_type(type_name)
    except UnknownEventType as exc:
        raise click.BadParameter(str(exc), param_hint="'--type'") from None
    try:
        outgoing = emitter.prepare(kind, user_id, data, state.event_limit)
    except ValidationError as exc:
        raise click.BadParameter(f"invalid {kind.value} payload: {json.dumps(exc.messages)}", param_hint="'--payload'") from None
    except (RecursionError, OverflowError) as exc:  # the payload's fault too, should any escape validation
        raise click.BadParameter(f"invalid {kind.value} payload: {exc}", param_hint="'--payload'") from None
    on_socketio = state.settings.backend == "socketio"
    if on_socketio and not isinstance(state.socketio.server.manager, PubSubManager):
        raise click.ClickException(
            "no message queue is configured (DASHBOARD_WS_MESSAGE_QUEUE): this process serves no sockets, "
            "so the event would reach no one"
        )
    try:
        emitter.send_now(state, outgoing)
    except DeliveryUnavailable as exc:
        raise click.ClickException(str(exc)) from None  # exit status 1
    click.echo(outgoing.envelope["eventId"])


def _read_payload(value: str) -> Any:
    if value == "-":
        source, text = "standard input", sys.stdin.read()
    elif value.startswith("@"):
        source = value[1:]
        try:
            with open(source, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise click.BadParameter(f"cannot read {source}: {reason}", param_hint="'--payload'") from None
    else:
        source, text = "the argument", value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not JSON: {exc}", param_hint="'--payload'") from None
    except RecursionError:  # json.loads recurses once per nested array or object
        raise click.BadParameter(f"{source} is nested too deeply", param_hint="'--payload'") from None
