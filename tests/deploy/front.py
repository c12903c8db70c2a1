"""nginx with TLS in front of ``opseal-server serve`` nodes, all on loopback, as this user.

Shared by ``tests/deploy/test_deploy.py`` and ``bench/server.py`` (its ``nginx_2nodes``
figures): the nginx config is derived from ``deploy/nginx/opseal.conf`` (the lines marked
``# opseal:...`` are rewritten: the first ``listen`` on a loopback port, a self-signed
certificate, our nodes as the upstream; temp files, pid and logs under a given folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..server.procs import ServerProcess, free_port
from ..server.test_tls import self_signed

__all__ = ["Front", "find_nginx", "nginx_config", "nodes_behind_nginx", "running"]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy/nginx/opseal.conf"


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    debian = Path("/usr/sbin/nginx")
    return shutil.which("nginx") or (str(debian) if debian.exists() else None)


def nginx_config(
    template: str, tmp: Path, port: int, nodes: list[int], tls: tuple[str, str]
) -> str:
    """deploy/nginx/opseal.conf made runnable as this user: TLS on a loopback port with a
    self-signed certificate, our nodes as the upstream, files under ``tmp``."""
    cert, key = tls
    upstream = list(nodes)
    lines = []
    skipping = False
    for line in template.splitlines():
        if "# opseal:redirect-begin" in line:
            skipping = True
        if skipping:
            skipping = "# opseal:redirect-end" not in line
            continue
        if "# opseal:tls" in line:
            line = re.sub(r"ssl_certificate_key \S+;", f"ssl_certificate_key {key};", line)
            line = re.sub(r"ssl_certificate \S+;", f"ssl_certificate {cert};", line)
        if "# opseal:node" in line:
            if nodes:
                lines += [f"    server 127.0.0.1:{n} max_fails=1 fail_timeout=5s;" for n in nodes]
                nodes = []
            continue
        if "# opseal:listen" in line:
            if port:  # the first listen line, on our address
                lines.append(re.sub(r"listen \S+", f"listen 127.0.0.1:{port}", line))
                port = 0
            continue
        lines.append(line)
    site = "\n".join(lines)
    assert "/etc/letsencrypt" not in site, "the # opseal: markers are out of date"
    # Exactly our nodes upstream (a port number is not searched as text: a random port such
    # as 38441 contains the template's 8441).
    servers = [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+) ", site)]
    assert sorted(servers) == sorted(upstream), "the # opseal: markers are out of date"
    temp = "\n".join(f"    {kind}_temp_path {tmp}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 2;\npid {tmp}/nginx.pid;\n"
            f"error_log {tmp}/error.log warn;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n    access_log off;\n{temp}\n{site}\n}}\n")  # fmt: skip


@contextlib.contextmanager
def running(
    args: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[int]:
    """A helper process (nginx, moto) listening on ``port`` once this enters; its pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            yield proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Front:
    """nginx as the clients see it (its URL and certificate) and the nodes behind it."""

    url: str
    ca_bundle: str
    nodes: list[ServerProcess]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)


@contextlib.asynccontextmanager
async def nodes_behind_nginx(
    nginx: str, database_url: str, tmp: Path, *, count: int = 2, env: dict[str, str] | None = None
) -> AsyncIterator[Front]:
    """``count`` nodes on ``database_url`` (an initialised database) behind nginx with TLS;
    every node trusts nginx's ``X-Forwarded-For`` (``OPSEAL_TRUSTED_PROXIES``)."""
    env = {"OPSEAL_TRUSTED_PROXIES": "127.0.0.1", **(env or {})}
    async with contextlib.AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(ServerProcess(database_url, env=env))
            for _ in range(count)
        ]
        port, conf, tls = free_port(), tmp / "nginx.conf", self_signed(tmp)
        conf.write_text(nginx_config(TEMPLATE.read_text(), tmp, port, [n.port for n in nodes], tls))
        stack.enter_context(running([nginx, "-c", str(conf), "-e", str(tmp / "err.log")],
                                    port, tmp / "nginx.out"))  # fmt: skip
        yield Front(f"https://127.0.0.1:{port}", tls[0], nodes)
