"""A national system's setup, shared by the crash test and ``bench/submit.py``: WCO, German
Customs' focal point and its national-system service account in 'STOP V'."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from opseal.crypto.charter import Charter, Member
from opseal.crypto.keys import SigningKey
from opseal.server.storage.tables import events

from ..server.procs import Node
from .conftest import AREAS, ORGS, PASSPHRASE, REPORTING, enrol_client

OPSEAL = Path(sys.executable).parent / "opseal"
NATIONAL_SYSTEM = "de-ncen"


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
        [str(OPSEAL), "--home", str(home), "--profile", NATIONAL_SYSTEM, *args],
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
        node, home, "de-customs", "ncen", NATIONAL_SYSTEM, roots["de-customs"], kind="service"
    )
    members = [
        Member(o, n, k, r, roots[o].verify_key, REPORTING.get(o, ()))
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
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    await wco.create_operation(draft, user_key)
    for client in (de, ncen):
        await client.join("op-stop-v", roots["wco"].verify_key.key_id)
    await wco.admit()
    for client in (wco, de, ncen):
        await client.close()
