"""A national system's submission survives the server and the client dying mid-way."""

from __future__ import annotations

import asyncio
import datetime
import signal
import sys
from pathlib import Path

import pytest

from opseal.client._demo_data import seizure_records
from opseal.client.seizures import write_seizures_csv

from ..server.conftest import BACKENDS, fresh_database
from ..server.procs import Node, ServerProcess, admin_context, prepare_database
from .national import cli, onboard, stored_messages

OPSEAL = Path(sys.executable).parent / "opseal"
RECORDS = 1000


@pytest.mark.parametrize("backend", BACKENDS)
async def test_submission_survives_server_and_client_kills(backend, tmp_path):
    """Every record of a 1,000-record CSV is on the server exactly once after both die."""
    async for url in fresh_database(backend, tmp_path):
        await prepare_database(url)
        csv = tmp_path / "seizures.csv"
        records = seizure_records("DE", RECORDS, datetime.date.today())
        await asyncio.to_thread(write_seizures_csv, csv, records)
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
