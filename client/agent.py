"""The key agent (design §14 "Key agent"): a device key unlocked once, held by a local process.

``opseal agent start`` unlocks the profile's device key file with the passphrase (Argon2id,
deliberately slow) and hands the opened key to a detached process, :func:`serve`, which keeps it
in memory and answers on a Unix socket until ``opseal agent stop`` or its idle timeout. Other
``opseal`` commands (and :meth:`~.client.Client.open` callers that ask for it) then fetch the
opened key from the agent instead of paying Argon2id again, and fall back to the passphrase when
no agent answers.

What protects the key, like ``ssh-agent``: the socket lives in a private folder (mode 0700,
created by ``mkdtemp``) and is created 0600 (umask set before ``bind``); the agent asks the
kernel who connected (``SO_PEERCRED``) and answers only its own uid; the client checks the same of
the agent before trusting what it serves. The agent marks itself non-dumpable (no core file, no
``ptrace`` or ``/proc/PID/mem`` by other processes of the uid). It holds only the device key
file's content (signing and HPKE keys, certificates, store key) — never the passphrase, the user
key or an organisation root. It ends after ``idle_timeout`` seconds without serving a key.

The protocol is one JSON line each way per connection: ``{"op": "device-key"}`` answers
``{"ok": true, "profile": ..., "device_id": ..., "keys": {...}}``; ``{"op": "status"}`` answers
the profile, pid, timeout and seconds left; ``{"op": "stop"}`` ends the agent;
``{"op": "run", "profile": ..., "argv": [...], "cwd": ..., "env": {...}}`` runs one of the
:data:`RUNNABLE` commands in the agent and answers its exit code, stdout and stderr.

Why commands run in the agent (issue 10): a scripted submission spends most of its time
importing aiohttp, cryptography and jsonschema, not sending data. With an agent running, the
``opseal`` process for ``submit seizures``, ``post`` and ``sync`` starts, hands its arguments
over and prints what the agent's warm interpreter answers. It adds no power: a process that
can reach the socket (same uid, 0700 folder) could already take the key. The passphrase is not
forwarded (``OPSEAL_PASSPHRASE`` stays in the calling process); commands run one at a time.

This module imports nothing heavy: the agent process starts in a few milliseconds and loads
the client once it listens.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ClientError

__all__ = [
    "AGENT_ENV",
    "RUNNABLE",
    "AgentError",
    "agent_file",
    "ask",
    "check_peer",
    "device_keys",
    "serve",
    "socket_folder",
]

AGENT_ENV = "OPSEAL_AGENT_SOCK"
"""An agent's socket path, overriding the one recorded in the profile folder."""
_LIMIT = 1 << 20
_ANSWER_LIMIT = 64 << 20  # a command's output
_CONNECT_TIMEOUT = 2.0

RUNNABLE = frozenset({("submit", "seizures"), ("post",), ("sync",)})
"""Commands the agent runs for ``opseal`` (short, scripted, never reading stdin)."""
_NOT_FORWARDED = frozenset({"OPSEAL_PASSPHRASE", AGENT_ENV})

# In the agent process: the profile, device and keys it holds, so that a command it runs
# takes them from memory rather than asking its own socket.
_HELD: tuple[str, str, dict[str, str]] | None = None


class AgentError(ClientError):
    """No agent answered, or one that cannot be trusted did."""


def agent_file(profile_path: Path) -> Path:
    """Where ``opseal agent start`` records the agent's socket and pid (in the 0700 profile)."""
    return profile_path / "agent.json"


def socket_folder() -> Path:
    """A new private folder (0700) for an agent's socket; ``$XDG_RUNTIME_DIR`` when set, so
    that the path stays short (a Unix socket path has at most 107 bytes)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(tempfile.mkdtemp(prefix="opseal-agent-", dir=base if base else None))


def check_peer(conn: socket.socket, uid: int) -> None:
    """Refuse a peer that does not run as ``uid`` (the kernel's word, ``SO_PEERCRED``)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, peer_uid, _gid = struct.unpack("3i", raw)
    if peer_uid != uid:
        raise AgentError(f"refusing a peer of uid {peer_uid}: the agent serves uid {uid} only")


def _check_folder(path: Path, uid: int) -> None:
    """The socket and its folder belong to ``uid`` and nobody else can reach them."""
    for node, mode in ((path.parent, 0o700), (path, 0o600)):
        st = node.lstat()
        if st.st_uid != uid or st.st_mode & 0o777 & ~mode:
            raise AgentError(f"{node} is not private to uid {uid} (mode {st.st_mode & 0o777:o})")


def _read_line(conn: socket.socket, limit: int = _LIMIT) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk or len(data) + len(chunk) > limit:
            raise AgentError("the agent connection closed before a whole answer")
        data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise AgentError("the agent answered something that is not an object")
    return answer


def _send(conn: socket.socket, message: Mapping[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


# -- the client side --------------------------------------------------------------------------
def socket_path(profile_path: Path) -> Path | None:
    """The agent socket for a profile: ``$OPSEAL_AGENT_SOCK``, else the profile's record."""
    if os.environ.get(AGENT_ENV):
        return Path(os.environ[AGENT_ENV])
    try:
        record = json.loads(agent_file(profile_path).read_text())
    except (OSError, ValueError):
        return None
    return Path(record["socket"]) if isinstance(record, dict) and "socket" in record else None


def ask(path: Path, request: Mapping[str, Any], *, uid: int | None = None) -> dict[str, Any]:
    """Send one request to the agent at ``path`` and return its answer, after checking that
    the socket is private and that the agent runs as ``uid`` (default: ours)."""
    uid = os.getuid() if uid is None else uid
    try:
        _check_folder(path, uid)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_CONNECT_TIMEOUT)
            conn.connect(str(path))
            check_peer(conn, uid)
            _send(conn, request)
            answer = _read_line(conn)
    except (OSError, ValueError) as exc:
        raise AgentError(f"no agent answers at {path} ({exc.__class__.__name__})") from exc
    if not answer.get("ok"):
        raise AgentError(f"the agent refused: {answer.get('error', 'no reason given')}")
    return answer


def device_keys(profile_path: Path, device_id: str) -> dict[str, str] | None:
    """The profile's opened device key file from its agent, or None when no agent serves it
    (not started, stopped, timed out, or serving another profile or device)."""
    if _HELD is not None:  # a command the agent runs itself
        profile, held_device, held_keys = _HELD
        same = profile == str(profile_path.resolve()) and held_device == device_id
        return held_keys if same else None
    path = socket_path(profile_path)
    if path is None:
        return None
    try:
        answer = ask(path, {"op": "device-key"})
    except AgentError:
        return None
    same = answer.get("profile") == str(profile_path.resolve())
    keys = answer.get("keys")
    if not same or answer.get("device_id") != device_id or not isinstance(keys, dict):
        return None
    return keys


def run_command(profile_path: Path, path: tuple[str, ...], argv: list[str]) -> int | None:
    """Have the profile's agent run ``opseal argv`` (command ``path``) and print its output
    here; its exit code, or None when no agent would run it (the caller runs it itself).
    Once the request has gone out the command may have run, so a broken answer is an error,
    never a second run."""
    if _HELD is not None or path not in RUNNABLE or "-" in argv:
        return None  # in the agent itself, another command, or one reading stdin
    if os.environ.get("OPSEAL_NO_AGENT_RUN"):
        return None
    socket_file = socket_path(profile_path)
    if socket_file is None:
        return None
    uid = os.getuid()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        try:
            _check_folder(socket_file, uid)
            conn.settimeout(_CONNECT_TIMEOUT)
            conn.connect(str(socket_file))
            check_peer(conn, uid)
        except (OSError, AgentError):
            return None  # no agent (or not ours): nothing was asked
        env = {k: v for k, v in os.environ.items()
               if k.startswith("OPSEAL_") and k not in _NOT_FORWARDED}  # fmt: skip
        request = {"op": "run", "profile": str(profile_path.resolve()), "argv": argv,
                   "cwd": os.getcwd(), "env": env}  # fmt: skip
        try:
            _send(conn, request)
            conn.settimeout(None)  # as long as the command takes
            answer = _read_line(conn, _ANSWER_LIMIT)
        except (OSError, ValueError, AgentError) as exc:
            raise AgentError(
                f"the agent stopped answering while running the command ({exc}); it may have "
                "run: `opseal sync` shows what the server holds"
            ) from exc
    if not answer.get("ok"):
        return None  # refused before running (another profile): run here
    sys.stdout.write(str(answer.get("stdout", "")))
    sys.stdout.flush()
    sys.stderr.write(str(answer.get("stderr", "")))
    sys.stderr.flush()
    code = answer.get("exit")
    return code if isinstance(code, int) else 1


# -- the agent process ------------------------------------------------------------------------
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
        isinstance(k, str) and k.startswith("OPSEAL_") and k not in _NOT_FORWARDED
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
    global _HELD
    uid = os.getuid() if uid is None else uid
    agent = _Agent(profile, device_id, keys, idle_timeout)
    _HELD = (profile, device_id, keys)
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
        while agent.running:
            left = agent.deadline - time.monotonic()
            if left <= 0:
                break
            listener.settimeout(left)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            with conn:
                _serve_one(conn, agent, uid)
    finally:
        _HELD = None
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()


def _serve_one(conn: socket.socket, agent: _Agent, uid: int) -> None:
    try:
        conn.settimeout(_CONNECT_TIMEOUT)
        check_peer(conn, uid)
        _send(conn, agent.answer(_read_line(conn)))
    except (AgentError, OSError, ValueError):
        return  # a refused or broken peer gets nothing; the agent keeps serving


def main() -> None:
    """The agent process: ``python -m opseal.client.agent``. Reads one JSON line on stdin (the
    socket path, profile, device id, keys and idle timeout), detaches (a second fork: the
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
        for module in ("opseal.client.client", "opseal.client.cli.records",
                       "opseal.client.cli.messages", "opseal.client.cli.maintenance"):  # fmt: skip
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    path = Path(order["socket"])
    # Run as `python -m`, this file is `__main__`; the commands the agent runs import
    # `opseal.client.agent`, whose `_HELD` must be the one `serve` sets.
    module = importlib.import_module("opseal.client.agent")
    try:
        module.serve(path, order["profile"], order["device_id"], order["keys"], order["idle"],
                     ready=ready)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            path.parent.rmdir()


if __name__ == "__main__":
    main()
