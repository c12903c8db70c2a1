"""Commands: the key agent (``agent start``, ``agent status``, ``agent stop``; design §14)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from opseal.crypto.errors import WrongPassphrase

from .. import agent
from .codes import CliError, usage
from .context import Ctx, wrong_passphrase
from .registry import arg, command

_UNITS = {"s": 1, "m": 60, "h": 3600}
_START_TIMEOUT = 10.0


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m`` or ``2h``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match[1]) <= 0:
        raise usage(f"--idle-timeout {text!r} is not a duration", "write e.g. 90s, 15m or 2h")
    return float(match[1]) * _UNITS[match[2] or "s"]


@command(
    "agent start",
    "hold this profile's device key unlocked for other commands, like ssh-agent",
    arg("--idle-timeout", default="15m", metavar="T",
        help="end after this long without serving a key: 90s, 15m, 2h (default 15m)"),
)  # fmt: skip
async def agent_start(ctx: Ctx) -> None:
    import asyncio  # not at the top: `opseal --help` imports this module

    idle = parse_duration(ctx.args.idle_timeout)
    info = ctx.profile.info()
    if await asyncio.to_thread(_status, ctx.profile.path) is not None:
        raise usage(
            f"an agent already serves profile {ctx.profile.name!r}", "`opseal agent stop` first"
        )
    try:
        keys = await asyncio.to_thread(ctx.profile.load_key, "device", ctx.passphrase())
    except WrongPassphrase as exc:
        raise wrong_passphrase(ctx.profile) from exc
    order = {"profile": str(ctx.profile.path.resolve()), "device_id": info.device_id,
             "keys": keys, "idle": idle}  # fmt: skip
    socket, pid = await asyncio.to_thread(_spawn, order)
    await asyncio.to_thread(_record, ctx.profile.path, socket, pid)
    ctx.out.result(
        {"socket": str(socket), "pid": pid, "idle_timeout": idle},
        [
            f"Agent started for profile {ctx.profile.name!r} (pid {pid}): commands on this "
            "profile no longer ask for the passphrase.",
            f"It ends after {ctx.args.idle_timeout} without use, or with `opseal agent stop`.",
        ],
    )


@command("agent status", "show whether an agent holds this profile's device key")
async def agent_status(ctx: Ctx) -> None:
    import asyncio  # not at the top: `opseal --help` imports this module

    status = await asyncio.to_thread(_status, ctx.profile.path)
    if status is None:
        raise CliError(
            f"no agent serves profile {ctx.profile.name!r}",
            "`opseal agent start` starts one; commands ask for the passphrase meanwhile",
        )
    ctx.out.result(
        {k: status[k] for k in ("pid", "profile", "device_id", "idle_timeout", "idle_left",
                                "served")},
        f"Agent pid {status['pid']} serves profile {ctx.profile.name!r} (device "
        f"{status['device_id']}); it ends after {status['idle_left']} s more without use.",
    )  # fmt: skip


@command("agent stop", "end this profile's agent (its key leaves memory)")
async def agent_stop(ctx: Ctx) -> None:
    import asyncio  # not at the top: `opseal --help` imports this module

    stopped = await asyncio.to_thread(_stop, ctx.profile.path)
    ctx.out.result(
        {"stopped": stopped},
        "Agent stopped." if stopped else f"No agent was serving profile {ctx.profile.name!r}.",
    )


# -- the work, in threads (sockets and processes block) -------------------------------------
def _status(profile_path: Path) -> dict[str, Any] | None:
    path = agent.socket_path(profile_path)
    if path is None:
        return None
    try:
        answer = agent.ask(path, {"op": "status"})
    except agent.AgentError:
        return None
    return answer if answer.get("profile") == str(profile_path.resolve()) else None


def _stop(profile_path: Path) -> bool:
    path = agent.socket_path(profile_path)
    stopped = False
    if path is not None and _status(profile_path) is not None:
        with contextlib.suppress(agent.AgentError):
            stopped = bool(agent.ask(path, {"op": "stop"}).get("stopped"))
    agent.agent_file(profile_path).unlink(missing_ok=True)
    return stopped


def _spawn(order: dict[str, Any]) -> tuple[Path, int]:
    """Start the agent process, hand it the opened key on a pipe (never argv or the
    environment) and wait until its socket listens."""
    folder = agent.socket_folder()
    socket = folder / "agent.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "opseal.client.agent_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C at the terminal does not end it
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(json.dumps({**order, "socket": str(socket)}).encode() + b"\n")
    proc.stdin.close()
    readable, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
    words = (proc.stdout.readline() if readable else b"").split()
    proc.stdout.close()
    proc.wait()  # the first process exits once it has forked the agent
    if len(words) != 2 or words[0] != b"ready" or not words[1].isdigit():
        with contextlib.suppress(OSError):
            folder.rmdir()
        raise CliError("the agent did not start", "run with --debug, or without the agent")
    return socket, int(words[1])


def _record(profile_path: Path, socket: Path, pid: int) -> None:
    """Write ``agent.json`` (0600, in the 0700 profile folder) so commands find the agent."""
    target = agent.agent_file(profile_path)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"socket": str(socket), "pid": pid}, f)
    os.replace(tmp, target)
