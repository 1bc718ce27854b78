"""The WebSocket API's Lambda handlers (serverless.yml): ``$connect``, ``$disconnect``, ``$default`` and the sweep.

Imported as a top-level module (Lambda's handler is ``lambda_ws.websocket``), so the imports are absolute.
The app comes from the same factory as the REST API, so both check tokens with the same JWT settings.
"""

from flask_dashboard_ws.apigateway import lambda_handlers

from example_app.app import create_app

handlers = lambda_handlers(create_app)
websocket = handlers.websocket
sweep = handlers.sweep
