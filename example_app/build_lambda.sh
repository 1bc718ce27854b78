#!/usr/bin/env bash
# Builds the deployment package that serverless.yml deploys (.serverless-build/lambda.zip): the example app,
# flask-dashboard-ws from this checkout with its [aws] extra, and their dependencies, as wheels for Lambda's
# Python 3.11 on x86_64. The two handler modules go at the top of the archive, where Lambda looks for
# lambda_ws.websocket and lambda_http.handler.
set -euo pipefail
cd "$(dirname "$0")"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$build/wheels" ..
python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$build/package" \
  --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --only-binary=:all: \
  "$(ls "$build"/wheels/*.whl)[aws,example]"
mkdir -p "$build/package/example_app"
tar --exclude=node_modules --exclude=instance --exclude=__pycache__ --exclude='.serverless*' \
  --exclude='*.sqlite' -cf - . | tar -xf - -C "$build/package/example_app"
cp lambda_ws.py lambda_http.py "$build/package/"
mkdir -p .serverless-build
rm -f .serverless-build/lambda.zip
(cd "$build/package" && python3 -m zipfile -c "$OLDPWD/.serverless-build/lambda.zip" .)
echo "built $(du -h .serverless-build/lambda.zip | cut -f1) .serverless-build/lambda.zip"
