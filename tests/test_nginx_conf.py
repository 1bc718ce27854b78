"""The example nginx config in docs/ is valid for nginx (``nginx -t``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.nginx_conf import (
    NGINX_CONF,
    NOT_INSTALLED,
    check_command,
    nginx_binary,
    with_upstreams,
)


def test_the_example_nginx_config_passes_nginx_t(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NOT_INSTALLED)
    result = subprocess.run(check_command(nginx, NGINX_CONF, tmp_path), check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_the_config_offers_round_robin_and_the_sticky_alternative():
    text = NGINX_CONF.read_text(encoding="utf-8")
    assert "upstream dashboard_app {" in text and "ip_hash;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "$request_uri" not in text and "$args" not in text  # no query strings (tokens) in the access log


def test_the_tests_copy_of_the_config_is_valid_too(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NOT_INSTALLED)
    conf = tmp_path / "nginx.conf"
    conf.write_text(with_upstreams(NGINX_CONF.read_text(encoding="utf-8"), 18080, ["127.0.0.1:18001", "127.0.0.1:18002"], tmp_path))
    assert "server 127.0.0.1:8001;" not in conf.read_text()
    result = subprocess.run(check_command(nginx, conf, tmp_path), check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
