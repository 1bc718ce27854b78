#!/usr/bin/env bash
# Run the example dashboard on this machine: installs what is missing into .venv, seeds a demo database
# the first time, and serves it on http://127.0.0.1:${PORT:-5000}/ with eventlet. Needs python3, node and npm.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  python3 -m venv .venv
fi
echo "Installing flask-dashboard-ws with the example app's dependencies ..."
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[example]"
if [ ! -f example_app/node_modules/socket.io-client/dist/socket.io.esm.min.js ]; then
  echo "Installing socket.io-client ..."
  npm ci --prefix example_app --omit=dev --no-audit --no-fund --loglevel=error  # the AWS tooling is for tests
fi
.venv/bin/flask --app example_app seed --if-empty
exec .venv/bin/python -m example_app --port "${PORT:-5000}"
