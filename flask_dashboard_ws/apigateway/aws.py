"""The boto3 clients of the API Gateway backend, with bounded waits, and how their failures are reported.

boto3 is the ``[aws]`` extra. The endpoints of DynamoDB and Lambda come from boto3's own settings (in Lambda,
the region; elsewhere ``AWS_DEFAULT_REGION``, or ``AWS_ENDPOINT_URL_DYNAMODB`` for an emulator); the connections API's
endpoint is ``DASHBOARD_WS_APIGATEWAY_ENDPOINT``.
"""

from __future__ import annotations

from typing import Any

from ..config import ApiGatewaySettings, ConfigError
from ..emitter import DeliveryUnavailable

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
except ImportError:  # pragma: no cover - exercised by installs without the extra
    boto3 = None


class ApiGatewayUnavailable(DeliveryUnavailable):
    """API Gateway's connections API or the connections table did not take an event.

    Raised when AWS cannot be reached or does not answer within ``DASHBOARD_WS_APIGATEWAY_TIMEOUT``, or refuses
    the credentials or the endpoint (HTTP 403): every post would fail the same way. A connection that is gone
    (HTTP 410) or one failed post is not an outage: that is logged per connection.
    """

    reason = "apigateway_unavailable"


def require_boto3() -> None:
    if boto3 is None:
        raise ConfigError(
            "DASHBOARD_WS_BACKEND='apigateway' needs boto3: pip install 'flask-dashboard-ws[aws]'"
        )


def client(service: str, settings: ApiGatewaySettings, endpoint_url: str | None = None) -> Any:
    """A client that gives up after ``timeout`` per attempt and two attempts (boto3's standard retry mode).

    Its connection pool holds ``concurrency`` connections, as many as the posts of one emit run at once.
    """
    require_boto3()
    config = Config(
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        retries={"mode": "standard", "max_attempts": 2},
        max_pool_connections=settings.concurrency,
    )
    try:
        return boto3.session.Session().client(
            service, region_name=settings.region, endpoint_url=endpoint_url, config=config
        )
    except NoRegionError:
        raise ConfigError(
            "DASHBOARD_WS_APIGATEWAY_REGION is not set and boto3 finds no AWS region (AWS_DEFAULT_REGION): "
            "set the region of the WebSocket API"
        ) from None


def status_of(error: BaseException) -> int | None:
    """The HTTP status AWS answered with, or None when there was no answer."""
    if isinstance(error, ClientError):
        return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


def describe(error: BaseException) -> str:
    """The error's class, status and AWS error code: never a request's content or credentials."""
    status, code = status_of(error), error_code(error)
    details = ", ".join(str(part) for part in (status, code) if part)
    return f"{type(error).__name__} ({details})" if details else type(error).__name__


AWS_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError) if boto3 is not None else ()
