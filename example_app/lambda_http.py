"""The REST API and the page on Lambda behind an API Gateway HTTP API (serverless.yml), through apig-wsgi.

Imported as a top-level module (Lambda's handler is ``lambda_http.handler``), so the imports are absolute.
"""

from apig_wsgi import make_lambda_handler

from example_app.app import create_app

app = create_app()
handler = make_lambda_handler(app, binary_support=True)
