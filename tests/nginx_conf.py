"""docs/nginx.conf for the tests: where nginx is, and the config run with a scratch prefix."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

NGINX_CONF = Path(__file__).resolve().parents[1] / "docs" / "nginx.conf"
NOT_INSTALLED = "nginx is not installed (Debian: apt-get install -y nginx; .ci/run installs it)"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def check_command(nginx: str, conf: Path, prefix: Path) -> list[str]:
    """``nginx -t`` on ``conf``, with every file nginx writes (logs, pid, temp files) under ``prefix``."""
    for name in ("logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    return [nginx, "-t", "-q", "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf), "-g", globals_for(prefix)]


def globals_for(prefix: Path) -> str:
    return f"pid {prefix}/nginx.pid;"


def with_upstreams(text: str, listen_port: int, upstreams: list[str], prefix: Path) -> str:
    """The documented config, listening on 127.0.0.1:``listen_port``, proxying to ``upstreams`` (host:port),
    with its temporary files under ``prefix`` (nginx's compiled-in paths need root and a system layout)."""
    servers = "".join(f"        server {address};\n" for address in upstreams)
    text = re.sub(r"(upstream \w+ \{\n(?:        ip_hash;\n)?)(?:        server [^\n]*\n)+", lambda m: m.group(1) + servers, text)
    text = text.replace("        listen 80;\n", f"        listen 127.0.0.1:{listen_port};\n")
    temp_paths = "".join(f"    {name}_temp_path {prefix}/{name.split('_')[0] if name != 'client_body' else name};\n"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return text.replace("http {\n", "http {\n" + temp_paths, 1)
