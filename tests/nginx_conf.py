"""docs/nginx.conf for the tests: where nginx is, and the config run with a scratch prefix."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import requests

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


class NginxProxy:
    """nginx in the foreground with ``conf`` (from :func:`with_upstreams`), listening on ``port``; stopped by
    :meth:`stop`. :meth:`start` returns once ``health_path`` answers 200 through it."""

    def __init__(self, conf: str, port: int, prefix: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.prefix = prefix
        self.conf = prefix / "nginx.conf"
        for name in ("logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / name).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(conf, encoding="utf-8")
        self.process: subprocess.Popen[str] | None = None

    def start(self, nginx: str, health_path: str, timeout: float) -> None:
        self.process = subprocess.Popen(
            [nginx, "-p", f"{self.prefix}/", "-e", str(self.prefix / "error.log"), "-c", str(self.conf),
             "-g", f"daemon off; {globals_for(self.prefix)}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout
        while not _answers(self.url + health_path):
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else "nginx exited"
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)  # polling for the condition, bounded by the deadline

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self, timeout: float) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
        if self.process.stderr:
            self.process.stderr.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
