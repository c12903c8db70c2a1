"""Server benchmark: ingest, sync and stream latency of one ``opseal-server serve`` process.

Per backend — SQLite always, PostgreSQL when ``OPSEAL_TEST_POSTGRES_URL`` or ``--postgres URL``
is given (a scratch database is created beside it and dropped afterwards) — it starts a real
server subprocess on a fresh database, sets up 'STOP V' with the test suite's helpers, and
measures:

- ``ingest_msgs_per_s``: 20,000 envelopes of ~1.5 KB, sealed beforehand, posted in batches of
  500 by two devices at once;
- ``sync_msgs_per_s``: a third device syncing them all, 1,000 entries a page;
- ``stream_latency_ms_p50``/``p99``: single messages posted one at a time, from the start of
  the post until a WebSocket subscriber receives it (200 samples);
- ``fanout_500_p50_ms``/``p99``: one message at a time to 500 idle WebSocket subscribers, from
  the start of the post until each subscriber's socket hands over the frame (20 messages, so
  10,000 samples; this client process reads all 500 sockets, so it is part of what is timed);
  ``fanout_500_server_mean_ms`` is the server's own time to write to all of them (/metrics);
- ``ws_idle_kib``: the server's resident memory per idle WebSocket (VmRSS before and after
  opening the 500 subscribers);
- ``server_peak_rss_mb``: the server's ``VmHWM``.

The last line printed is one JSON object keyed by backend. Usage:
``.venv/bin/python bench/server.py [--postgres URL] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client.api import ApiClient
from tests.server.conftest import Operation
from tests.server.helpers import envelope, make_area
from tests.server.procs import (
    Node,
    ServerProcess,
    admin_context,
    open_operation,
    prepare_database,
)

AREA = "seizures"
POSTERS = ("customs", "customs2")
READER = "partner"
BODY = "x" * 1200  # sealed, about 1.5 KB per envelope


@dataclass(frozen=True)
class Sizes:
    messages: int
    batch: int
    samples: int
    subscribers: int = 500
    fanout_messages: int = 20


async def run_backend(url: str, sizes: Sizes) -> dict[str, float]:
    """All figures for one backend, on a fresh database behind a fresh server process."""
    await prepare_database(url)
    async with ServerProcess(url) as proc, admin_context(url) as ctx:
        node = Node(proc.url, ctx)
        try:
            op = await open_operation(node)
            state, secret = await make_area(op, AREA, [*POSTERS, READER])
            figures = await measure_ingest(op, state, secret, sizes)
            figures |= await measure_sync(op, sizes.messages)
            figures |= await measure_latency(op, state, secret, sizes.samples)
            figures |= await measure_fanout(op, state, secret, proc.pid, sizes)
            figures["server_peak_rss_mb"] = round(proc.peak_rss_mb(), 1)
            figures["cores"] = len(os.sched_getaffinity(0))
        finally:
            await node.close()
    return figures


def seal_batches(op: Operation, who: str, state: Any, secret: bytes, sizes: Sizes) -> list:
    count = sizes.messages // len(POSTERS)
    sealed = [envelope(op, who, state, secret, n, BODY).to_bytes() for n in range(1, count + 1)]
    return [sealed[i : i + sizes.batch] for i in range(0, count, sizes.batch)]


async def measure_ingest(op: Operation, state: Any, secret: bytes, sizes: Sizes) -> dict:
    """Two devices post their pre-sealed batches concurrently; messages stored per second."""
    work = {who: seal_batches(op, who, state, secret, sizes) for who in POSTERS}

    async def post_all(who: str) -> int:
        api = op.actors[who].api
        return sum([len(await api.post_batch(op.id, AREA, batch)) for batch in work[who]])

    start = time.perf_counter()
    stored = sum(await asyncio.gather(*(post_all(who) for who in POSTERS)))
    elapsed = time.perf_counter() - start
    assert stored == sizes.messages, stored
    return {
        "ingest_msgs_per_s": round(stored / elapsed),
        "envelope_bytes": len(work[POSTERS[0]][0][0]),
    }


async def measure_sync(op: Operation, expected: int) -> dict:
    """A reader syncs the whole area from the start; messages received per second."""
    api, cursor, received = op.actors[READER].api, "", 0
    start = time.perf_counter()
    while True:
        page = await api.sync(cursor, limit=1000)
        received += sum(event["kind"] == "message" for event in page["events"])
        cursor = page["cursor"]
        if not page["more"]:
            break
    elapsed = time.perf_counter() - start
    assert received == expected, received
    return {"sync_msgs_per_s": round(received / elapsed)}


class Arrivals:
    """Follows a stream and notes when each message's sequence number arrived."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.changed = asyncio.Event()

    async def follow(self, api: ApiClient, cursor: str) -> None:
        async for message in api.stream(cursor):
            if message["type"] == "event" and message["event"]["kind"] == "message":
                self.times[message["event"]["seq"]] = time.perf_counter()
                self.changed.set()

    async def at(self, seq: int) -> float:
        async with asyncio.timeout(30):
            while seq not in self.times:
                self.changed.clear()
                await self.changed.wait()
        return self.times[seq]


async def measure_latency(op: Operation, state: Any, secret: bytes, samples: int) -> dict:
    """Post one message at a time; milliseconds until the subscriber's stream delivers it."""
    poster, reader = op.actors[POSTERS[0]].api, op.actors[READER].api
    arrivals = Arrivals()
    follower = asyncio.create_task(arrivals.follow(reader, (await reader.sync(limit=1))["cursor"]))
    latencies = []
    try:
        for n in range(samples + 10):  # the first 10 warm up
            sealed = envelope(op, POSTERS[0], state, secret, 1, BODY, message_id=uuid.uuid4())
            start = time.perf_counter()
            seq = await poster.post_message(op.id, AREA, sealed.to_bytes())
            if n >= 10:
                latencies.append((await arrivals.at(seq) - start) * 1000)
            else:
                await arrivals.at(seq)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    return {
        "stream_latency_ms_p50": round(statistics.median(latencies), 2),
        "stream_latency_ms_p99": round(
            statistics.quantiles(latencies, n=100, method="inclusive")[98], 2
        ),
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_subscribers(op: Operation, count: int) -> tuple[aiohttp.ClientSession, list]:
    """``count`` WebSocket streams of the reader device, each caught up (``idle``)."""
    api = op.actors[READER].api
    cursor = (await api.sync(limit=5000))["cursor"]
    while (page := await api.sync(cursor, limit=5000))["events"]:
        cursor = page["cursor"]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = api.base_url.replace("http", "ws", 1) + "/api/v1/stream"
    headers = {"Authorization": f"Bearer {api.token}"}

    async def connect() -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url, params={"cursor": cursor}, headers=headers)
        while (await ws.receive_json())["type"] != "idle":
            pass
        return ws

    sockets = []
    for start in range(0, count, 50):
        sockets += await asyncio.gather(*(connect() for _ in range(min(50, count - start))))
    return session, sockets


async def measure_fanout(op: Operation, state: Any, secret: bytes, pid: int, sizes: Sizes) -> dict:
    """One message to ``sizes.subscribers`` idle streams: delivery time to each of them, and
    the server memory each idle stream costs."""
    await asyncio.sleep(1)
    before = rss_kib(pid)
    session, sockets = await open_subscribers(op, sizes.subscribers)
    await asyncio.sleep(1)
    idle_kib = (rss_kib(pid) - before) / len(sockets)
    poster = op.actors[POSTERS[0]].api
    delays: list[float] = []
    before_metrics = await fanout_metrics(poster)

    async def receive(ws: aiohttp.ClientWebSocketResponse, seq: int, start: float) -> None:
        while True:
            frame = await ws.receive()
            arrived = time.perf_counter()  # before parsing: the client's own work is not timed
            message = json.loads(frame.data)
            if message["type"] == "event" and message["event"]["seq"] == seq:
                delays.append((arrived - start) * 1000)
                return

    try:
        for _ in range(sizes.fanout_messages):
            sealed = envelope(op, POSTERS[0], state, secret, 1, "fan-out", message_id=uuid.uuid4())
            start = time.perf_counter()
            seq_task = asyncio.create_task(poster.post_message(op.id, AREA, sealed.to_bytes()))
            seq = await seq_task
            await asyncio.wait_for(asyncio.gather(*(receive(ws, seq, start) for ws in sockets)), 30)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await session.close()
    quantiles = statistics.quantiles(delays, n=100, method="inclusive")
    return {
        f"fanout_{sizes.subscribers}_p50_ms": round(statistics.median(delays), 1),
        f"fanout_{sizes.subscribers}_p99_ms": round(quantiles[98], 1),
        f"fanout_{sizes.subscribers}_server_mean_ms": await server_mean_ms(poster, before_metrics),
        "ws_idle_kib": round(idle_kib, 1),
    }


async def fanout_metrics(api: ApiClient) -> tuple[float, float]:
    """(sum, count) of the server's ``opseal_stream_fanout_seconds`` histogram."""
    text = (await api.request_bytes("GET", "/metrics")).decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("opseal_stream_fanout_seconds_"):
            name, value = line.split()
            values[name] = float(value)
    return (
        values.get("opseal_stream_fanout_seconds_sum", 0.0),
        values.get("opseal_stream_fanout_seconds_count", 0.0),
    )


async def server_mean_ms(api: ApiClient, before: tuple[float, float]) -> float:
    """The server's own mean time, during the fan-out runs, to write to all subscribers."""
    total, count = await fanout_metrics(api)
    runs = count - before[1]
    return round((total - before[0]) / runs * 1000, 1) if runs else 0.0


@contextlib.asynccontextmanager
async def scratch_postgres(url: str) -> AsyncIterator[str]:
    """A new, empty database next to ``url``'s, dropped afterwards."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"opseal_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def run_postgres(url: str, sizes: Sizes) -> dict[str, float]:
    async with scratch_postgres(url) as scratch:
        return await run_backend(scratch, sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("OPSEAL_TEST_POSTGRES_URL", ""),
        help="a postgresql+asyncpg:// URL (default: $OPSEAL_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    sizes = Sizes(2_000, 500, 50) if args.quick else Sizes(20_000, 500, 200)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/opseal.db"
        results["sqlite"] = asyncio.run(run_backend(url, sizes))
    if args.postgres:
        results["postgresql"] = asyncio.run(run_postgres(args.postgres, sizes))
    for backend, figures in results.items():
        print(f"{backend}: {figures}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
