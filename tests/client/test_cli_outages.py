"""The ``opseal`` CLI tells the truth through outages and refusals: run as subprocesses against
a real ``opseal-server serve`` that is stopped and started again (issue 13)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from opseal.client._demo_data import seizure_records
from opseal.client.errors import SubmissionRefused
from opseal.client.profile import Profile
from opseal.client.seizures import write_seizures_csv
from opseal.client.store import Store
from opseal.client.sync import SyncClient
from opseal.crypto.charter import Charter, Member
from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey

from ..server.conftest import fresh_database
from ..server.procs import Node, ServerProcess, admin_context, prepare_database
from .conftest import AREAS, ORGS, PASSPHRASE, REPORTING, enrol_client
from .national import NATIONAL_SYSTEM, OPSEAL, stored_messages

OP = "op-stop-v"
OP2 = "op-two"


def opseal(home: Path, profile: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """One ``opseal`` run: exit code, stdout, stderr."""
    env = {**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE}
    done = subprocess.run(
        [str(OPSEAL), "--home", str(home), "--profile", profile, *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def pinned(home: Path, profile: str, op: str) -> bytes | None:
    """The coordinator root a profile's store pins for ``op``."""
    _, key = Profile(profile, home).load_device(PASSPHRASE)
    store = Store(home / profile / "state.db", key)
    try:
        return store.pin(op)
    finally:
        store.close()


def popen(home: Path, profile: str, *args: str) -> subprocess.Popen:
    """A long-running ``opseal`` (stdout and stderr piped)."""
    return subprocess.Popen(
        [str(OPSEAL), "--home", str(home), "--profile", profile, *args],
        env={**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def read_until(stream, text: str, timeout: float = 20) -> str:
    """Lines of ``stream`` up to the first holding ``text``."""

    async def lines() -> str:
        seen = ""
        while text not in seen:
            line = await asyncio.to_thread(stream.readline)
            assert line, f"ended before {text!r}: {seen}"
            seen += line
        return seen

    return await asyncio.wait_for(lines(), timeout)


async def run(home: Path, profile: str, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(opseal, home, profile, *args)


async def world(node: Node, home: Path) -> dict[str, SigningKey]:
    """WCO, German Customs (focal point and national system) in 'STOP V'; 'op-two' created
    with German Customs invited but not joined."""
    roots = {org: SigningKey.generate() for org in ("wco", "de-customs")}
    wco = await enrol_client(node, home, "wco", "ocu", "wco-device", roots["wco"])
    de = await enrol_client(node, home, "de-customs", "focal", "de-device", roots["de-customs"])
    ncen = await enrol_client(node, home, "de-customs", "ncen", NATIONAL_SYSTEM,
                              roots["de-customs"], kind="service")  # fmt: skip
    members = [Member(o, n, k, r, roots[o].verify_key, REPORTING.get(o, ()))
               for o, (n, k, r) in ORGS.items() if o in roots]  # fmt: skip
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    for op in (OP, OP2):
        draft = Charter.create(operation_id=op, code=op.upper(), name=op, starts_at=wco.now(),
                               ends_at=wco.now() + 86400 * 30, members=members, areas=AREAS,
                               issued_at=wco.now() - 5)  # fmt: skip
        await wco.create_operation(draft, user_key)
    await ncen.join(OP, roots["wco"].verify_key.key_id)
    await wco.admit()
    await ncen.sync()
    for client in (wco, de, ncen):
        await client.close()
    return roots


async def open_streams(url: str, token: str, count: int) -> tuple[aiohttp.ClientSession, list]:
    session = aiohttp.ClientSession()
    streams = [
        await session.ws_connect(
            url.replace("http", "ws", 1) + "/api/v1/stream",
            headers={"Authorization": f"Bearer {token}"},
        )
        for _ in range(count)
    ]
    for ws in streams:  # each caught up (its first message), so each is open for good
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT
    return session, streams


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_outages_and_refusals_through_the_cli(backend, tmp_path):
    """Through a server stop: posts and records are queued (exit 3 naming the count, with a
    countdown), the next sync delivers each once, `admit --watch` survives and admits a device
    that joins after the restart, `serve` closes 50 open streams and stops within 5 s; a wrong
    root key pins nothing; a closed operation's refusals are listed (exit 1, --json refused)."""
    home = tmp_path / "home"
    csv = tmp_path / "seizures.csv"
    records = seizure_records("DE", 3, datetime.date.today())
    await asyncio.to_thread(write_seizures_csv, csv, records)
    # two more, past the records the closed-operation step uses (DE-0004, DE-0005)
    await asyncio.to_thread(write_seizures_csv, tmp_path / "more.csv",
                            seizure_records("DE", 7, datetime.date.today())[5:])  # fmt: skip
    async for url in fresh_database(backend, tmp_path):
        await prepare_database(url)
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            roots = await world(Node(server.url, ctx), home)
            watch = subprocess.Popen(
                [str(OPSEAL), "--home", str(home), "--profile", "wco-device", "--json",
                 "admit", "--watch", "--interval", "0.3"],
                env={**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                await _outage(server, ctx, home, csv)
                await _wrong_root_then_watch_admits(home, roots, watch)
            finally:
                watch.terminate()
                watch.communicate(timeout=10)
            await _closed_operation(server, home, csv, tmp_path)


async def _outage(server: ServerProcess, ctx, home: Path, csv: Path) -> None:
    sync = await asyncio.to_thread(SyncClient.open, Profile(NATIONAL_SYSTEM, home), PASSPHRASE)
    token = sync.aio.api.token
    await asyncio.to_thread(sync.close)
    session, streams = await open_streams(server.url, token, 50)
    tail = popen(home, "wco-device", "tail")
    try:
        started = time.monotonic()
        await server.stop(timeout=30)
        assert time.monotonic() - started < 5, "serve took 5 s or more to stop"
        closing = re.search(r"closing (\d+) open streams", server.output())
        assert closing, server.output()
        assert int(closing.group(1)) >= 50, server.output()  # the 50, and the tail if it was in
        for ws in streams[:3]:  # after what was sent, a close with a reconnect hint
            while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
                pass
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1012), message
            assert "reconnect" in message.extra
        # `tail` reconnects, telling its countdown as `submit` does
        assert "retrying in" in await read_until(tail.stderr, "retrying in"), "no countdown"
    finally:
        await session.close()
        tail.terminate()
        tail.communicate(timeout=10)

    code, out, err = await run(home, NATIONAL_SYSTEM, "post", OP, "seizures", "--text",
                               "parcel CN1", "--retry-for", "0.5")  # fmt: skip
    assert code == 3, err
    assert "1 queued; re-run or `opseal sync`" in err
    assert "retrying in" in err  # the countdown
    code, out, err = await run(home, NATIONAL_SYSTEM, "submit", "seizures", str(csv), "--op", OP,
                               "--retry-for", "0.5")  # fmt: skip
    assert code == 3, err
    assert "4 queued; re-run or `opseal sync`" in err
    # Ctrl-C during the countdown: exit 130, saying what stays queued
    submit = popen(home, NATIONAL_SYSTEM, "submit", "seizures", str(csv.with_name("more.csv")),
                   "--op", OP)  # fmt: skip
    await read_until(submit.stderr, "retrying in")
    submit.send_signal(signal.SIGINT)
    _, err = await asyncio.to_thread(submit.communicate, timeout=10)
    assert submit.returncode == 130, err
    assert "interrupted; 6 queued in the outbox; re-run or `opseal sync`" in err, err

    await server.start()
    code, out, err = await run(home, NATIONAL_SYSTEM, "sync")
    assert code == 0, err
    assert out.startswith("Sent 6;"), out
    assert await stored_messages(ctx) == (6, 6)
    code, out, err = await run(home, NATIONAL_SYSTEM, "--json", "submit", "seizures", str(csv),
                               "--op", OP)  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["records"], result["new"], result["already_sent"]) == (3, 0, 3)
    assert (result["submitted"], result["refused"]) == (3, [])
    assert await stored_messages(ctx) == (6, 6)  # each record exactly once


async def _wrong_root_then_watch_admits(home: Path, roots, watch: subprocess.Popen) -> None:
    wrong = b64e(SigningKey.generate().verify_key.raw)
    code, _, err = await run(home, "de-device", "op", "join", OP2, "--root-key", wrong, "--yes")
    assert code == 1, err
    assert await asyncio.to_thread(pinned, home, "de-device", OP2) is None  # nothing pinned
    right = b64e(roots["wco"].verify_key.raw)
    code, _, err = await run(home, "de-device", "op", "join", OP2, "--root-key", right, "--yes")
    assert code == 0, err
    # The watch started before the restart admits the device that joined after it.
    line = await asyncio.wait_for(asyncio.to_thread(watch.stdout.readline), 30)
    assert json.loads(line) == {"admitted": "de-device"}, line


async def _closed_operation(server: ServerProcess, home: Path, csv: Path, tmp_path: Path) -> None:
    wco = await asyncio.to_thread(SyncClient.open, Profile("wco-device", home), PASSPHRASE)
    try:
        for phase in ("active", "follow-up", "closed"):
            await asyncio.to_thread(wco._loop.run, wco.aio.api.set_phase(OP, phase))
        await asyncio.to_thread(wco.sync)
        with pytest.raises(SubmissionRefused) as refused:  # the library says so too
            await asyncio.to_thread(wco.post, OP, "plan", "text", {"text": "late"})
        assert [r.code for r in refused.value.refused] == ["phase_closed"]
    finally:
        await asyncio.to_thread(wco.close)
    late = tmp_path / "late.csv"
    fresh = seizure_records("DE", 5, datetime.date.today())[3:]
    await asyncio.to_thread(write_seizures_csv, late, fresh)
    code, out, err = await run(home, NATIONAL_SYSTEM, "--json", "submit", "seizures", str(late),
                               "--op", OP)  # fmt: skip
    assert code == 1, err
    result = json.loads(out)
    assert result["submitted"] == 0
    refused = {r["record_id"]: r["code"] for r in result["refused"]}
    assert refused == {r["record_id"]: "phase_closed" for r in fresh}
    for record in fresh:  # each refusal listed on stderr
        assert f"refused: {record['record_id']} (" in err, err
    code, out, err = await run(home, NATIONAL_SYSTEM, "post", OP, "seizures", "--text", "late")
    assert code == 1, err
    assert "phase_closed" in err
    assert "Posted" not in out
    code, out, _ = await run(home, NATIONAL_SYSTEM, "--json", "warnings")
    assert code == 4  # the open warnings, each with what to do
    listed = json.loads(out)
    assert {w["kind"] for w in listed["warnings"]} == {"submission-refused"}
    assert all("opseal outbox" in w["todo"] for w in listed["warnings"])
