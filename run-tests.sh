#!/usr/bin/env bash
# Runs the test matrix with tox (py311 in the three async modes, py310 on the lowest dependency versions,
# py313, and py311-aws: the AWS Lambda backend under serverless-offline). Extra arguments go to tox, e.g.
# ./run-tests.sh -e py312-gevent.
set -euo pipefail
cd "$(dirname "$0")"
discover=()
if command -v pyenv >/dev/null; then
  # pyenv's shims answer only for the active version: point tox at 3.10-3.13 directly.
  for version in 3.10 3.11 3.12 3.13; do
    if prefix="$(pyenv prefix "$(pyenv latest "$version" 2>/dev/null)" 2>/dev/null)"; then
      discover+=("$prefix/bin/python$version")
    fi
  done
fi
# The official JavaScript client, for the tests that drive it and for the example app's page; and the AWS
# emulators (serverless-offline, dynalite) from example_app's devDependencies, for the apigateway tests.
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
npm ci --prefix example_app --no-audit --no-fund --loglevel=error
python3 -m pip install -q --disable-pip-version-check "tox>=4.11"
exec python3 -m tox ${discover[@]:+--discover "${discover[@]}"} "$@"
