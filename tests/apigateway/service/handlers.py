"""The test service's Lambda handlers (service/serverless.yml), built from the tests' app."""

from flask_dashboard_ws.apigateway import lambda_handlers

from tests.apigateway.aws_app import create_app

handlers = lambda_handlers(create_app)
websocket = handlers.websocket
sweep = handlers.sweep
