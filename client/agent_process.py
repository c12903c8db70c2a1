"""The key agent's process (design §14 "Key agent"): holds an opened device key file and
answers on a private Unix socket (the protocol and the client side are in :mod:`.agent`).

Started detached by ``opseal agent start`` as ``python -m opseal.client.agent_process``; it
serves keys, status and stop requests, and runs the :data:`~.agent.RUNNABLE` commands in its
warm interpreter with the key it holds, one at a time. It imports nothing heavy until it
listens, then loads the client while nobody waits.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import agent

__all__ = ["main", "serve"]


def _not_dumpable() -> None:
    """No core file and no ptrace by other processes of the uid (Linux; best effort)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


class _Agent:
    def __init__(self, profile: str, device_id: str, keys: dict[str, str], idle: float) -> None:
        self.profile, self.device_id, self.keys, self.idle = profile, device_id, keys, idle
        self.deadline = time.monotonic() + idle
        self.served = 0
        self.ran = 0
        self.running = True

    def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "device-key":
            self.deadline = time.monotonic() + self.idle
            self.served += 1
            return {"ok": True, "profile": self.profile, "device_id": self.device_id,
                    "keys": self.keys}  # fmt: skip
        if op == "status":
            left = max(0.0, self.deadline - time.monotonic())
            return {"ok": True, "profile": self.profile, "device_id": self.device_id,
                    "pid": os.getpid(), "idle_timeout": self.idle, "idle_left": round(left),
                    "served": self.served, "ran": self.ran}  # fmt: skip
        if op == "stop":
            self.running = False
            return {"ok": True, "stopped": True}
        if op == "run":
            return self.run(request)
        return {"ok": False, "error": f"unknown request {op!r}"}

    def run(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run one ``opseal`` command here, in the caller's folder and ``OPSEAL_*`` settings,
        with this agent's key; its output is captured and answered."""
        if request.get("profile") != self.profile:
            return {"ok": False, "error": "this agent serves another profile"}
        checked = _run_request(request)
        if checked is None:
            return {"ok": False, "error": "a run request has argv, cwd and OPSEAL_* env"}
        argv, cwd, env = checked
        from .cli.app import run  # loaded once the agent listens (see main)

        self.deadline = time.monotonic() + self.idle
        self.ran += 1
        out, err = io.StringIO(), io.StringIO()
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        try:
            os.chdir(cwd)
            for name in [k for k in os.environ if k.startswith("OPSEAL_")]:
                del os.environ[name]
            os.environ.update(env)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(argv)
        except (OSError, SystemExit) as exc:
            err.write(f"opseal: the agent could not run the command: {exc}\n")
            code = 1
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)
        self.deadline = time.monotonic() + self.idle
        return {"ok": True, "exit": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _run_request(request: Mapping[str, Any]) -> tuple[list[str], str, dict[str, str]] | None:
    """A run request's argv, folder and settings, or None when any is not as it must be."""
    argv, cwd, env = request.get("argv"), request.get("cwd"), request.get("env")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return None
    if not isinstance(cwd, str) or not isinstance(env, dict):
        return None
    if not all(
        isinstance(k, str) and k.startswith("OPSEAL_") and k not in agent.NOT_FORWARDED
        and isinstance(v, str)
        for k, v in env.items()
    ):  # fmt: skip
        return None
    return argv, cwd, env


def serve(
    path: Path,
    profile: str,
    device_id: str,
    keys: dict[str, str],
    idle_timeout: float,
    *,
    uid: int | None = None,
    ready: Any = None,
) -> None:
    """Hold ``keys`` and answer on a new socket at ``path`` (its folder must be private) until
    stopped or ``idle_timeout`` seconds pass without a key served; then remove the socket.
    Peers of another uid than ``uid`` (default: ours) are refused and disconnected.
    ``ready`` (a callable) is called once the socket listens."""
    uid = os.getuid() if uid is None else uid
    held = _Agent(profile, device_id, keys, idle_timeout)
    agent.hold(profile, device_id, keys)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window before a chmod
    try:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    try:
        listener.listen(16)
        if ready is not None:
            ready()
        while held.running:
            left = held.deadline - time.monotonic()
            if left <= 0:
                break
            listener.settimeout(left)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            with conn:
                _serve_one(conn, held, uid)
    finally:
        agent.release()
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()


def _serve_one(conn: socket.socket, held: _Agent, uid: int) -> None:
    try:
        conn.settimeout(agent.CONNECT_TIMEOUT)
        agent.check_peer(conn, uid)
        agent.send(conn, held.answer(agent.read_line(conn)))
    except (agent.AgentError, OSError, ValueError):
        return  # a refused or broken peer gets nothing; the agent keeps serving


def main() -> None:
    """The agent process: ``python -m opseal.client.agent_process``. Reads one JSON line on
    stdin (the socket path, profile, device id, keys and idle timeout), detaches (a second fork: the
    agent is nobody's child), prints ``ready PID`` on stdout once the socket listens, and
    serves."""
    _not_dumpable()
    order = json.loads(sys.stdin.readline())
    sys.stdin.close()
    if os.fork():
        os._exit(0)  # the starting command reaps this one and reads the agent's "ready"

    def ready() -> None:
        print(f"ready {os.getpid()}", flush=True)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (1, 2):
            os.dup2(devnull, fd)  # the starting command stops reading: nothing may block
        # Load what the commands it runs need now, while nobody waits (requests queue).
        # aiohttp too: the transport imports it on its first use (~0.3 s here with its TLS
        # context), which the agent's first command paid.
        for module in ("opseal.client.client", "opseal.client.cli.records",
                       "opseal.client.cli.messages", "opseal.client.cli.maintenance",
                       "aiohttp"):  # fmt: skip
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    path = Path(order["socket"])
    try:
        serve(path, order["profile"], order["device_id"], order["keys"], order["idle"],
              ready=ready)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            path.parent.rmdir()


if __name__ == "__main__":
    main()
