"""The AWS backend: dashboard events over an API Gateway WebSocket API, with connections in DynamoDB.

Set ``DASHBOARD_WS_BACKEND = "apigateway"`` and emits post to the user's API Gateway connections; build the
WebSocket API's Lambda handlers from the app factory with :func:`lambda_handlers`. Needs the ``[aws]`` extra.
"""

from .aws import ApiGatewayUnavailable
from .handlers import LambdaHandlers, lambda_handlers

__all__ = ["ApiGatewayUnavailable", "LambdaHandlers", "lambda_handlers"]
