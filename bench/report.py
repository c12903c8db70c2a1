"""Report benchmark: ``opseal report`` over 100,000 seizure records, and the CSV import rate.

A real ``opseal-server serve`` runs on a fresh SQLite database; WCO, German Customs and its
national system are onboarded as in the test suite. Timed first: reading and validating a CSV
of the records (``import_records_per_s``: parse + schema validation, no network). The national
system then submits them (not timed). The coordinator's device syncs: it fetches, verifies
(signatures, epochs, sequence) and decrypts every record into its sealed store
(``first_sync_s``, reported apart: it happens once, as records arrive during the operation;
``first_sync_cpu_s`` is the client process's CPU, ``first_sync_worker_cpu_s`` its signature
worker's, on the other core: design §14; ``first_sync_server_cpu_s`` the server's, serving
the pages on the same two cores).
Timed last (``report_s``): what ``opseal report`` does on that up-to-date device but
printing — a sync with nothing new, decrypting every record from the store, checking it
against the schema and aggregating.

The last line printed is one JSON object. Usage: ``.venv/bin/python bench/report.py
[--records N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client._demo_data import seizure_records
from opseal.client.client import Client
from opseal.client.corrections import submissions
from opseal.client.profile import Profile
from opseal.client.report import aggregate, checked_records, reporting_codes
from opseal.client.seizures import read_seizures_csv, write_seizures_csv
from tests.client.conftest import PASSPHRASE
from tests.client.national import NATIONAL_SYSTEM, onboard
from tests.server.procs import (
    Node,
    ServerProcess,
    admin_context,
    cpu_seconds,
    prepare_database,
)

OP = "op-stop-v"


def _import(csv: Path) -> tuple[list[dict], float]:
    start = time.perf_counter()
    records, rejected = read_seizures_csv(csv)
    elapsed = time.perf_counter() - start
    assert not rejected, rejected[:3]
    return records, elapsed


async def _sync(home: Path) -> tuple[float, float, float]:
    """The coordinator's device fetches, verifies and decrypts every record into its store:
    (wall seconds, the client process's CPU seconds — the steadier figure on a shared machine —
    and its signature worker's CPU seconds, on the other core)."""
    client = await Client.open(Profile("wco-device", home), PASSPHRASE)
    try:
        start, cpu, worker = time.perf_counter(), time.process_time(), _children_cpu()
        await client.sync()
        return (
            time.perf_counter() - start,
            time.process_time() - cpu,
            _children_cpu() - worker,
        )
    finally:
        await client.close()


def _children_cpu() -> float:
    """CPU seconds of this process's children that ended (the server is still running)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _report(home: Path) -> tuple[dict, float]:
    """What `opseal report` does on an up-to-date device: sync (nothing new), decrypt every
    record from the sealed store, check it against the schema, aggregate."""
    client = await Client.open(Profile("wco-device", home), PASSPHRASE)
    try:
        start = time.perf_counter()
        await client.sync()
        charter = await client.charter(OP, refresh=True)
        submitted = submissions(client.read(OP))
        records, excluded = checked_records(submitted, reporting_codes(charter))
        report = aggregate(records)
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    assert not excluded, excluded[:3]
    return report, elapsed


async def run(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite+aiosqlite:///{home / 'opseal.db'}"
        await prepare_database(url)
        csv = home / "seizures.csv"
        rows = write_seizures_csv(csv, seizure_records("DE", count, datetime.date.today()))
        records, import_s = _import(csv)
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            await onboard(Node(server.url, ctx), home)
            submitter = await Client.open(Profile(NATIONAL_SYSTEM, home), PASSPHRASE)
            try:
                await submitter.sync()
                submit_start = time.perf_counter()
                await submitter.post_seizures(OP, records)
                submit_s = time.perf_counter() - submit_start
            finally:
                await submitter.close()
            server_cpu = cpu_seconds(server.pid)
            sync_s, sync_cpu_s, worker_cpu_s = await _sync(home)
            server_cpu = cpu_seconds(server.pid) - server_cpu
            report, report_s = await _report(home)
    assert report["totals"]["seizures"] == count, report["totals"]
    return {
        "records": count,
        "csv_rows": rows,
        "report_s": round(report_s, 2),
        "first_sync_s": round(sync_s, 2),
        "first_sync_cpu_s": round(sync_cpu_s, 2),
        "first_sync_worker_cpu_s": round(worker_cpu_s, 2),
        "first_sync_server_cpu_s": round(server_cpu, 2),
        "import_records_per_s": round(count / import_s),
        "submit_s_untimed_setup": round(submit_s, 2),
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.records))))


if __name__ == "__main__":
    main()
