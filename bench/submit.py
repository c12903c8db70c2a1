"""Submission benchmark: ``opseal submit seizures`` of 10,000 records through the CLI.

A real ``opseal-server serve`` runs on a fresh SQLite database; WCO, German Customs and its
national system are onboarded as in the test suite; then the CLI, a separate process, reads a
CSV of 10,000 records (about 12,000 rows), validates, seals, queues and sends them. Timed:
the CLI process from start to exit. Its peak resident memory comes from ``wait4``.

The last line printed is one JSON object. Usage: ``.venv/bin/python bench/submit.py
[--records N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client._demo_data import seizure_records
from opseal.client.seizures import write_seizures_csv
from tests.client.national import cli, onboard, stored_messages
from tests.server.procs import Node, ServerProcess, admin_context, prepare_database


async def run(records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite+aiosqlite:///{home / 'opseal.db'}"
        await prepare_database(url)
        csv = home / "seizures.csv"
        rows = write_seizures_csv(csv, seizure_records("DE", records, datetime.date.today()))
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            await onboard(Node(server.url, ctx), home)
            start = time.perf_counter()
            proc = cli(home, "submit", "seizures", str(csv), "--op", "op-stop-v")
            _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            output = proc.stdout.read().decode() if proc.stdout else ""
            if proc.stdout:
                proc.stdout.close()
            assert proc.returncode == 0, output
            stored, distinct = await stored_messages(ctx)
            assert (stored, distinct) == (records, records), (stored, distinct)
    return {
        "records": records,
        "csv_rows": rows,
        "records_per_s": round(records / elapsed),
        "elapsed_s": round(elapsed, 2),
        "client_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.records))
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
