"""A national system's submission survives the server and the client dying mid-way."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from opseal.client._demo_data import seizure_records
from opseal.client.seizures import write_seizures_csv
from opseal.crypto.charter import Charter, Member
from opseal.crypto.keys import SigningKey
from opseal.server.storage.tables import events

from ..server.conftest import BACKENDS, fresh_database
from ..server.procs import Node, ServerProcess, admin_context, prepare_database
from .conftest import AREAS, ORGS, PASSPHRASE, enrol_client

OPSEAL = Path(sys.executable).parent / "opseal"
RECORDS = 1000


async def stored_messages(ctx) -> tuple[int, int]:
    """(messages, distinct message ids) the server holds for 'seizures'."""
    async with ctx.engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.count(events.c.message_id.distinct())).where(
                    events.c.area == "seizures", events.c.kind == "message"
                )
            )
        ).one()
    return row[0], row[1]


def cli(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE}
    return subprocess.Popen(
        [str(OPSEAL), "--home", str(home), "--profile", "de-ncen", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def onboard(node: Node, home: Path) -> None:
    """WCO, German Customs' focal point and its national system; 'STOP V' with everyone in."""
    roots = {org: SigningKey.generate() for org in ORGS}
    wco = await enrol_client(node, home, "wco", "ocu", "wco-device", roots["wco"])
    de = await enrol_client(node, home, "de-customs", "focal", "de-device", roots["de-customs"])
    ncen = await enrol_client(
        node, home, "de-customs", "ncen", "de-ncen", roots["de-customs"], kind="service"
    )
    members = [
        Member(o, n, k, r, roots[o].verify_key)
        for o, (n, k, r) in ORGS.items()
        if o in ("wco", "de-customs")
    ]
    draft = Charter.create(
        operation_id="op-stop-v",
        code="STOP V",
        name="Operation STOP V",
        starts_at=wco.now(),
        ends_at=wco.now() + 86400 * 30,
        members=members,
        areas=AREAS,
        issued_at=wco.now() - 5,
    )
    await wco.create_operation(draft, wco.profile.load_user(PASSPHRASE)[0])
    for client in (de, ncen):
        await client.join("op-stop-v", roots["wco"].verify_key.key_id)
    await wco.admit()
    for client in (wco, de, ncen):
        await client.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_submission_survives_server_and_client_kills(backend, tmp_path):
    """Every record of a 1,000-record CSV is on the server exactly once after both die."""
    async for url in fresh_database(backend, tmp_path):
        await prepare_database(url)
        csv = tmp_path / "seizures.csv"
        write_seizures_csv(csv, seizure_records("DE", RECORDS, datetime.date.today()))
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            await onboard(Node(server.url, ctx), tmp_path)
            client = cli(tmp_path, "submit", "seizures", str(csv), "--op", "op-stop-v")
            async with asyncio.timeout(60):
                while (await stored_messages(ctx))[0] == 0:  # the first batch has landed
                    await asyncio.sleep(0.01)
            await server.kill()  # the server dies mid-submission ...
            await asyncio.sleep(0.5)
            client.send_signal(signal.SIGKILL)  # ... then the national system's process
            client.communicate()
            partial = (await stored_messages(ctx))[0]
            assert 0 < partial < RECORDS, partial  # stopped in the middle
            await server.start()  # both come back
            for args in (("sync",), ("submit", "seizures", str(csv), "--op", "op-stop-v")):
                rerun = cli(tmp_path, *args)
                output = rerun.communicate(timeout=120)[0].decode()
                assert rerun.returncode == 0, output
            assert await stored_messages(ctx) == (RECORDS, RECORDS)
