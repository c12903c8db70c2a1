"""Records submitted exactly once per organisation, whichever of its devices sends them
(issue 10 review): a device that never queued a record still recognises it among its
organisation's verified messages, and another organisation cannot block it."""

from __future__ import annotations

import datetime

from opseal.client._demo_data import seizure_records
from opseal.client.client import Client
from opseal.client.profile import Profile

from ..server.procs import Node
from .conftest import PASSPHRASE
from .national import NATIONAL_SYSTEM, onboard, stored_messages

OP = "op-stop-v"


async def test_records_another_device_of_the_organisation_posted_are_not_sent_again(
    server, tmp_path
):
    """German Customs' national system submits three records; the focal point's laptop,
    whose outbox never held them, submits the same file: nothing is sent twice."""
    await onboard(Node(server.url, server.ctx), tmp_path)
    records = seizure_records("DE", 3, datetime.date.today())
    national = await Client.open(Profile(NATIONAL_SYSTEM, tmp_path), PASSPHRASE)
    laptop = await Client.open(Profile("de-device", tmp_path), PASSPHRASE)
    try:
        await national.sync()
        ids = await national.post_seizures(OP, records)
        await laptop.sync()
        assert await laptop.post_seizures(OP, records) == ids
        assert laptop.store.pending(10, OP, "seizures") == []
    finally:
        await national.close()
        await laptop.close()
    assert await stored_messages(server.ctx) == (3, 3)
