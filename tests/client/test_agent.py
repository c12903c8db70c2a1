"""The key agent (issue 10, design §14): one unlock, a private socket, an idle timeout."""
# ruff: noqa: F811 -- the CLI fixture imported from test_cli is a parameter here

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from opseal.client import agent

from .conftest import PASSPHRASE
from .test_cli import CSV, OP, onboard, opseal  # noqa: F401 (fixture)

KEYS = {"signing": "k", "store_key": "s"}


def _serving(idle: float, *, uid: int | None = None) -> tuple[threading.Thread, os.PathLike]:
    path = agent.socket_folder() / "agent.sock"
    up = threading.Event()
    thread = threading.Thread(
        target=agent.serve, args=(path, "/p", "dev", KEYS, idle), daemon=True,
        kwargs={"uid": uid, "ready": up.set},
    )  # fmt: skip
    thread.start()
    assert up.wait(5)
    return thread, path


def test_the_agent_refuses_other_uids_and_ends_when_idle():
    """The socket is 0600 in a 0700 folder; the agent answers no peer of another uid (it
    closes without a byte), the client trusts no agent of another uid nor a socket others can
    reach, and an idle agent ends and removes its socket."""
    thread, path = _serving(0.5, uid=os.getuid() + 1)  # the agent serves someone else only
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with socket.socket(socket.AF_UNIX) as conn:  # we are the wrong peer: nothing comes back
        conn.connect(str(path))
        try:  # the agent may close before the request is even sent: still nothing came back
            conn.sendall(b'{"op": "device-key"}\n')
            answer = _reply(conn)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
        assert answer == b""
    with pytest.raises(agent.AgentError, match="uid"):  # the client checks the agent's uid
        agent.ask(path, {"op": "status"}, uid=os.getuid() + 1)
    thread.join(5)
    assert not thread.is_alive()  # the idle timeout ended it
    assert not path.exists()
    path.parent.rmdir()

    thread, path = _serving(30)
    assert agent.ask(path, {"op": "device-key"})["keys"] == KEYS
    os.chmod(path.parent, 0o755)  # a socket folder others may enter is not trusted
    with pytest.raises(agent.AgentError, match="not private"):
        agent.ask(path, {"op": "device-key"})
    os.chmod(path.parent, 0o700)
    assert agent.ask(path, {"op": "stop"})["stopped"]
    thread.join(5)
    assert not path.exists()
    path.parent.rmdir()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_commands_use_a_running_agent_and_fall_back_once_it_stops(
    opseal, server, monkeypatch
):
    """With the agent started, commands open the profile without the passphrase (a wrong one
    in the environment goes unused); status shows what it served; after `agent stop` the
    passphrase is needed again, and the key file record is gone."""
    await onboard(opseal, server, "fr-customs", "fr")
    started = await opseal("fr", "agent", "start", "--idle-timeout", "2m", "--json")
    assert started.code == 0, started.err
    record = opseal.home / "fr" / "agent.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    try:
        monkeypatch.setenv("OPSEAL_PASSPHRASE", "not the passphrase at all")
        assert (await opseal("fr", "whoami")).code == 0
        again = await opseal("fr", "agent", "start")
        assert again.code == 2
        assert "already serves" in again.err
        status = (await opseal("fr", "agent", "status", "--json")).json
        assert (status["pid"], status["served"]) == (started.json["pid"], 1)
    finally:
        stopped = await opseal("fr", "agent", "stop", "--json")
    assert stopped.json == {"stopped": True}
    assert not record.exists()
    refused = await opseal("fr", "whoami")
    assert refused.code == 2
    assert "passphrase does not open" in refused.err
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    assert (await opseal("fr", "whoami")).code == 0
    assert (await opseal("fr", "agent", "status")).code == 1
    for _ in range(50):  # the agent process has exited
        if not _alive(started.json["pid"]):
            break
        time.sleep(0.02)
    assert not _alive(started.json["pid"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_scripted_commands_run_in_the_agent_with_the_same_answers(
    opseal, server, tmp_path, monkeypatch
):
    """With an agent running, `submit seizures`, `post` and `sync` run in its warm process
    (issue 10: no start-up cost per submission): same output, same exit codes and refusals
    as when run here, files named relative to the caller's folder; the passphrase is never
    handed over, and a request for another profile, or carrying the passphrase, is refused."""
    wco_root = (await onboard(opseal, server, "wco", "wco", coordinator=True))["root_key"]
    await onboard(opseal, server, "fr-customs", "fr")
    created = await opseal("wco", "op", "create", "--id", OP, "--code", "STOP V",
                           "--name", "Operation STOP V", "--start", "2025-05-12",
                           "--end", "2099-05-30", "--member", "fr-customs:customs:FR")  # fmt: skip
    assert created.code == 0, created.err
    assert (await opseal("fr", "op", "join", OP, "--root-key", wco_root)).code == 0
    assert (await opseal("wco", "admit")).code == 0
    started = await opseal("fr", "agent", "start", "--idle-timeout", "2m", "--json")
    assert started.code == 0, started.err
    socket_file = Path(await asyncio.to_thread(agent.socket_path, opseal.home / "fr"))
    try:
        posted = await opseal("fr", "--json", "post", OP, "seizures", "--text", "seen at Le Havre")
        assert posted.code == 0, posted.err
        monkeypatch.chdir(tmp_path)
        await asyncio.to_thread((tmp_path / "seizures.csv").write_text, CSV)
        submitted = await opseal("fr", "--json", "submit", "seizures", "seizures.csv", "--op", OP)
        refused = await opseal("fr", "post", OP, "plan", "--text", "not mine to post")
        assert (await opseal("fr", "sync")).code == 0
        status = await asyncio.to_thread(agent.ask, socket_file, {"op": "status"})
        assert status["ran"] == 4  # each of them ran in the agent

        # What the same commands answer when run here, without the agent.
        monkeypatch.setenv("OPSEAL_NO_AGENT_RUN", "1")
        again = await opseal("fr", "--json", "submit", "seizures", "seizures.csv", "--op", OP)
        refused_here = await opseal("fr", "post", OP, "plan", "--text", "not mine to post")
        status = await asyncio.to_thread(agent.ask, socket_file, {"op": "status"})
        assert status["ran"] == 4
        assert (submitted.code, again.code) == (1, 1)  # one row refused, two records sent
        assert submitted.json["message_ids"] == again.json["message_ids"]
        assert submitted.json["rejected"] == again.json["rejected"]
        assert [(r["row"], r["column"]) for r in submitted.json["rejected"]] == [
            (5, "reporting_country")
        ]
        assert (refused.code, refused.err) == (refused_here.code, refused_here.err)
        assert "may not post in area 'plan'" in refused.err
        read = (await opseal("wco", "--json", "read", OP, "seizures")).json["messages"]
        assert posted.json["message_id"] in {m["message_id"] for m in read}

        base = {"argv": ["sync"], "cwd": str(tmp_path), "env": {}}
        other = {**base, "op": "run", "profile": str((opseal.home / "wco").resolve())}
        with pytest.raises(agent.AgentError, match="another profile"):
            await asyncio.to_thread(agent.ask, socket_file, other)
        mine = {**base, "op": "run", "profile": str((opseal.home / "fr").resolve())}
        with pytest.raises(agent.AgentError, match="argv, cwd and OPSEAL_"):
            await asyncio.to_thread(
                agent.ask, socket_file, {**mine, "env": {"OPSEAL_PASSPHRASE": PASSPHRASE}}
            )
        status = await asyncio.to_thread(agent.ask, socket_file, {"op": "status"})
        assert status["ran"] == 4
    finally:
        await opseal("fr", "agent", "stop")


def _reply(conn: socket.socket) -> bytes:
    try:
        return conn.recv(100)
    except ConnectionResetError:  # closed before reading our request: nothing was sent
        return b""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
