"""Replay-tracking benchmark: a reader's sync of 500 messages whose counters jump by 100,000.

Issue 12 asks that such a sender leave every reader's replay state under 1 MB and its sync
under 1 s. The test suite checks the state and a loose time bound (a shared CI machine cannot
promise 1 s); this measures the time. A real ``opseal-server serve`` runs on a fresh SQLite
database; WCO, German Customs' focal point and its national system are onboarded as in the
test suite; the national system posts 500 envelopes with counters 100,000, 200,000, …
in one batch, and the focal point's device syncs them. Timed, ``--runs`` times on fresh
readers' stores (each run re-reads the same 500 entries from scratch):

- ``sync_s``: the reader's whole ``sync()`` (fetch, verify, decrypt, replay tracking, store);
- ``replay_s``: the replay tracker alone on the same 500 counters (a record each, then the
  changes taken once, as a sync page saves them);
- ``replay_state_bytes``: the saved ``missing`` column of the reader's replay table.

The last line printed is one JSON object. Usage: ``.venv/bin/python bench/replay.py
[--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client.client import Client
from opseal.client.profile import Profile
from opseal.crypto.envelope import ReplayTracker
from tests.client.conftest import PASSPHRASE
from tests.client.national import NATIONAL_SYSTEM, onboard
from tests.server.procs import Node, ServerProcess, admin_context, prepare_database

OP, AREA, JUMP, MESSAGES = "op-stop-v", "seizures", 100_000, 500
READER = "de-device"


def replay_only() -> float:
    """The tracker alone: 500 jumping counters, then the changes taken, as a sync page does."""
    tracker = ReplayTracker()
    started = time.perf_counter()
    for n in range(1, MESSAGES + 1):
        tracker.record(OP, AREA, NATIONAL_SYSTEM, n * JUMP)
    tracker.take_changes()
    return time.perf_counter() - started


async def run(runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite+aiosqlite:///{home / 'opseal.db'}"
        await prepare_database(url)
        async with admin_context(url) as ctx, ServerProcess(url) as server:
            await onboard(Node(server.url, ctx), home)
            sender = await Client.open(Profile(NATIONAL_SYSTEM, home), PASSPHRASE)
            try:
                await sender.sync()
                state, secret = sender.verifier.current(OP, AREA)
                envelopes = [
                    sender.outbox._seal(
                        state, secret, n * JUMP, uuid.uuid4(), "text", b'"jump"', "H0", False
                    ).to_bytes()
                    for n in range(1, MESSAGES + 1)
                ]
                await sender.api.post_batch(OP, AREA, envelopes)
            finally:
                await sender.close()
            # The reader's store before its first sync, copied for every run.
            pristine = home / "reader-pristine"
            await asyncio.to_thread(shutil.copytree, home / READER, pristine)
            times, sizes = [], []
            for _ in range(runs):
                await asyncio.to_thread(shutil.rmtree, home / READER)
                await asyncio.to_thread(shutil.copytree, pristine, home / READER)
                reader = await Client.open(Profile(READER, home), PASSPHRASE)
                try:
                    started = time.perf_counter()
                    report = await reader.sync()
                    times.append(time.perf_counter() - started)
                    assert report.messages == MESSAGES, report
                    rows = reader.store.db.execute("SELECT missing FROM replay").fetchall()
                    sizes.append(sum(len(missing) for (missing,) in rows))
                finally:
                    await reader.close()
    replay = [replay_only() for _ in range(runs)]
    return {
        "messages": MESSAGES,
        "sync_s_median": round(statistics.median(times), 3),
        "sync_s_min": round(min(times), 3),
        "replay_s_median": round(statistics.median(replay), 4),
        "replay_state_bytes": max(sizes),
        "cores": len(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="syncs to time (fresh store each)")
    args = parser.parse_args()
    figures = asyncio.run(run(args.runs))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
