"""The key agent (design §14 "Key agent"): a device key unlocked once, held by a local process.

``opseal agent start`` unlocks the profile's device key file with the passphrase (Argon2id,
deliberately slow) and hands the opened key to a detached process,
:func:`opseal.client.agent_process.serve`, which keeps it
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

import json
import os
import socket
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ClientError

__all__ = [
    "AGENT_ENV",
    "CONNECT_TIMEOUT",
    "NOT_FORWARDED",
    "RUNNABLE",
    "AgentError",
    "agent_file",
    "ask",
    "check_peer",
    "device_keys",
    "hold",
    "read_line",
    "release",
    "run_command",
    "send",
    "socket_folder",
]

AGENT_ENV = "OPSEAL_AGENT_SOCK"
"""An agent's socket path, overriding the one recorded in the profile folder."""
_LIMIT = 1 << 20
_ANSWER_LIMIT = 64 << 20  # a command's output
CONNECT_TIMEOUT = 2.0

RUNNABLE = frozenset({("submit", "seizures"), ("post",), ("sync",)})
"""Commands the agent runs for ``opseal`` (short, scripted, never reading stdin)."""
NOT_FORWARDED = frozenset({"OPSEAL_PASSPHRASE", AGENT_ENV})

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


def read_line(conn: socket.socket, limit: int = _LIMIT) -> dict[str, Any]:
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


def send(conn: socket.socket, message: Mapping[str, Any]) -> None:
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


def _connect(path: Path, uid: int) -> socket.socket:
    """A connection to the agent at ``path``, once the socket is private to ``uid`` and the
    agent runs as ``uid``; raises OSError or :class:`AgentError` otherwise."""
    _check_folder(path, uid)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(CONNECT_TIMEOUT)
        conn.connect(str(path))
        check_peer(conn, uid)
    except BaseException:
        conn.close()
        raise
    return conn


def ask(path: Path, request: Mapping[str, Any], *, uid: int | None = None) -> dict[str, Any]:
    """Send one request to the agent at ``path`` and return its answer, after checking that
    the socket is private and that the agent runs as ``uid`` (default: ours)."""
    try:
        with _connect(path, os.getuid() if uid is None else uid) as conn:
            send(conn, request)
            answer = read_line(conn)
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
    try:
        conn = _connect(socket_file, os.getuid())
    except (OSError, AgentError):
        return None  # no agent (or not ours): nothing was asked
    with conn:
        env = {k: v for k, v in os.environ.items()
               if k.startswith("OPSEAL_") and k not in NOT_FORWARDED}  # fmt: skip
        request = {"op": "run", "profile": str(profile_path.resolve()), "argv": argv,
                   "cwd": os.getcwd(), "env": env}  # fmt: skip
        try:
            send(conn, request)
            conn.settimeout(None)  # as long as the command takes
            answer = read_line(conn, _ANSWER_LIMIT)
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


def hold(profile: str, device_id: str, keys: dict[str, str]) -> None:
    """In the agent process: the key it holds, which commands it runs take from memory."""
    global _HELD
    _HELD = (profile, device_id, keys)


def release() -> None:
    global _HELD
    _HELD = None
