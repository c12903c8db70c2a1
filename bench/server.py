"""Server benchmark: ingest, sync and stream latency of ``opseal-server serve`` processes.

Per setup — ``sqlite`` always; ``postgresql`` when ``OPSEAL_TEST_POSTGRES_URL`` or
``--postgres URL`` is given (a scratch database is created beside it and dropped afterwards);
and ``nginx_2nodes``, two nodes on such a PostgreSQL database behind nginx with TLS (started as
this user by ``tests/deploy/front.py``, as ``make test-deploy`` does), where every client,
stream and post goes through nginx — it starts real server subprocesses on a fresh database,
sets up 'STOP V' with the test suite's helpers, and measures:

- ``ingest_msgs_per_s``: 20,000 envelopes of ~1.5 KB, sealed beforehand, posted in batches of
  500 by two devices at once; ``ingest_server_cpu_us_per_msg`` and (PostgreSQL on this host)
  ``ingest_db_cpu_us_per_msg``: the CPU time of the server processes and of the database's
  backends during that run, per message — steadier than throughput on a shared machine;
- ``sync_msgs_per_s``: a third device syncing them all, 1,000 entries a page;
- ``stream_latency_ms_p50``/``p99``: single messages posted one at a time, from the start of
  the post until a WebSocket subscriber receives it (200 samples);
- ``fanout_500_p50_ms``/``p99``: one message at a time to 500 idle WebSocket subscribers, from
  the start of the post until the frame reaches each subscriber's socket (20 messages, so
  10,000 samples; the subscribers are bare protocol readers that only note arrival times,
  on uvloop's event loop, whose TLS is written in C, with this process's garbage collector
  off while it measures, as ``timeit`` does);
  ``fanout_500_server_mean_ms`` is a node's own time to write to all of its subscribers
  (/metrics of each node; behind nginx, each node holds about half of the streams) and
  ``fanout_500_server_cpu_ms`` the CPU time of all nodes (not nginx) per message during those
  runs, post included — steadier than times when other jobs share the cores — and
  ``fanout_500_load_generator_cpu_ms`` this process's (the readers', on the same cores);
- ``ws_idle_kib``: the servers' resident memory per idle WebSocket (VmRSS before and after
  opening the 500 subscribers);
- ``single_post_msgs_per_s``: 5,000 single ~1.5 KB envelopes, one per request, 32 requests in
  flight, each lane its own device (a device's counters must rise, so one device cannot have
  two posts racing); ``server_cpu_ms_per_single_post`` is the server processes' CPU time
  (user + system, all nodes and their children — the signature worker — not nginx) during
  that run divided by the posts, and
  ``load_generator_cpu_ms_per_single_post`` this process's own (what the other core spends
  sending; it shows whether the server or the load generator sets the rate), and
  ``single_posts_per_group`` the mean number of posts the servers committed per transaction
  (their ``opseal_single_post_group_size`` histograms);
- ``server_peak_rss_mb``: the server's ``VmHWM`` (the sum over the nodes).

The last line printed is one JSON object keyed by setup. Usage:
``.venv/bin/python bench/server.py [--postgres URL] [--quick] [--only single|ingest|fanout]
[--setups sqlite,postgresql,nginx_2nodes]`` (``--only`` measures those figures alone).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from opseal.client.api import ApiClient
from opseal.wire.stream import StreamEvent
from tests.deploy.front import find_nginx, nodes_behind_nginx
from tests.server.conftest import ACTOR_ORGS, Operation, enrol
from tests.server.helpers import envelope, make_area
from tests.server.procs import (
    Node,
    ServerProcess,
    admin_context,
    cpu_seconds,
    open_operation,
    prepare_database,
)

AREA = "seizures"
POSTERS = ("customs", "customs2")
READER = "partner"
BODY = "x" * 1200  # sealed, about 1.5 KB per envelope
SETUPS = ("sqlite", "postgresql", "nginx_2nodes")
GROUP_SIZE = "opseal_single_post_group_size"  # single posts per transaction (group_commit)


@dataclass(frozen=True)
class Sizes:
    messages: int
    batch: int
    samples: int
    subscribers: int = 500
    fanout_messages: int = 20
    single_posts: int = 5_000
    lanes: int = 32
    only: str = ""


@dataclass
class Target:
    """Where the clients go (a node, or nginx in front of nodes) and the nodes behind it."""

    url: str
    nodes: list[ServerProcess]
    ssl: ssl.SSLContext | None = None

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]


async def run_backend(url: str, sizes: Sizes) -> dict[str, float]:
    """All figures for one backend, on a fresh database behind a fresh server process."""
    await prepare_database(url)
    async with ServerProcess(url) as proc:
        return await measure_all(Target(proc.url, [proc]), url, sizes)


async def run_nginx(url: str, nginx: str, sizes: Sizes) -> dict[str, float]:
    """All figures through nginx (TLS) in front of two nodes on a scratch PostgreSQL database."""
    async with scratch_postgres(url) as scratch:
        await prepare_database(scratch)
        with tempfile.TemporaryDirectory() as folder:
            async with nodes_behind_nginx(nginx, scratch, Path(folder)) as front:
                target = Target(front.url, front.nodes, front.ssl_context())
                return await measure_all(target, scratch, sizes)


async def measure_all(target: Target, url: str, sizes: Sizes) -> dict[str, float]:
    async with admin_context(url) as ctx:
        node = Node(target.url, ctx, ssl_context=target.ssl)
        try:
            op = await open_operation(node)
            lanes = await enrol_lanes(node, op, sizes.lanes)
            state, secret = await make_area(op, AREA, [*POSTERS, READER, *lanes])
            figures: dict[str, float] = {}
            if sizes.only in ("", "ingest"):
                figures |= await measure_ingest(op, state, secret, sizes, target, url)
            if not sizes.only:
                figures |= await measure_sync(op, sizes.messages)
                figures |= await measure_latency(op, state, secret, sizes.samples)
            if sizes.only in ("", "fanout"):
                figures |= await measure_fanout(op, state, secret, target, sizes)
            if sizes.only in ("", "single"):
                figures |= await measure_single_posts(op, state, secret, lanes, target, sizes, url)
            figures["server_peak_rss_mb"] = round(sum(n.peak_rss_mb() for n in target.nodes), 1)
            figures["cores"] = len(os.sched_getaffinity(0))
        finally:
            await node.close()
    return figures


def take_counters(op: Operation, who: str, count: int) -> range:
    """The next ``count`` counters of ``who``: the server refuses a counter that does not rise."""
    counters: dict[str, int] = op.__dict__.setdefault("counters", {})
    first = counters.get(who, 0) + 1
    counters[who] = first + count - 1
    return range(first, first + count)


def seal_batches(op: Operation, who: str, state: Any, secret: bytes, sizes: Sizes) -> list:
    count = sizes.messages // len(POSTERS)
    numbers = take_counters(op, who, count)
    sealed = [envelope(op, who, state, secret, n, BODY).to_bytes() for n in numbers]
    return [sealed[i : i + sizes.batch] for i in range(0, count, sizes.batch)]


async def measure_ingest(
    op: Operation, state: Any, secret: bytes, sizes: Sizes, target: Target, url: str
) -> dict:
    """Two devices post their pre-sealed batches concurrently; messages stored per second, and
    the CPU each stored message cost the servers and (PostgreSQL on this host) the database."""
    work = {who: seal_batches(op, who, state, secret, sizes) for who in POSTERS}
    server_before = sum(map(cpu_seconds, target.pids))
    db_before = await database_cpu(url)

    async def post_all(who: str) -> int:
        api = op.actors[who].api
        return sum([len(await api.post_batch(op.id, AREA, batch)) for batch in work[who]])

    start = time.perf_counter()
    stored = sum(await asyncio.gather(*(post_all(who) for who in POSTERS)))
    elapsed = time.perf_counter() - start
    server_cpu = sum(map(cpu_seconds, target.pids)) - server_before
    db_after = await database_cpu(url)
    assert stored == sizes.messages, stored
    figures = {
        "ingest_msgs_per_s": round(stored / elapsed),
        "envelope_bytes": len(work[POSTERS[0]][0][0]),
        "ingest_server_cpu_us_per_msg": round(server_cpu / stored * 1e6, 1),
    }
    if db_after:  # a backend opened during the run started from nothing
        db_cpu = sum(seconds - db_before.get(backend, 0.0) for backend, seconds in db_after.items())
        figures["ingest_db_cpu_us_per_msg"] = round(db_cpu / stored * 1e6, 1)
    return figures


async def database_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``url``'s database, by process id;
    empty for SQLite or a database on another host (no such processes here)."""
    if not url.startswith("postgresql"):
        return {}
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.rsplit("/", 1)[1],
        )
    finally:
        await conn.close()
    found: dict[int, float] = {}
    for row in rows:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            found[row["pid"]] = cpu_seconds(row["pid"])
    return found


async def measure_sync(op: Operation, expected: int) -> dict:
    """A reader syncs the whole area from the start; messages received per second."""
    api, cursor, received = op.actors[READER].api, "", 0
    start = time.perf_counter()
    while True:
        page = await api.sync(cursor, limit=1000)
        received += sum(event.kind == "message" for event in page.events)
        cursor = page.cursor
        if not page.more:
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
            if isinstance(message, StreamEvent) and message.event.kind == "message":
                self.times[message.event.seq] = time.perf_counter()
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
    follower = asyncio.create_task(arrivals.follow(reader, (await reader.sync(limit=1)).cursor))
    latencies = []
    try:
        for n in range(samples + 10):  # the first 10 warm up
            [n] = take_counters(op, POSTERS[0], 1)
            sealed = envelope(op, POSTERS[0], state, secret, n, BODY, message_id=uuid.uuid4())
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


async def enrol_lanes(node: Node, op: Operation, count: int) -> list[str]:
    """``count`` more logged-in devices of the customs organisation, one per in-flight lane."""
    org = ACTOR_ORGS[POSTERS[0]]
    for n in range(count):
        name = f"lane{n}"
        op.actors[name] = await enrol(node, op.world, org, "customs-user", f"{name}-device")  # type: ignore[arg-type]
    return [f"lane{n}" for n in range(count)]


async def measure_single_posts(
    op: Operation,
    state: Any,
    secret: bytes,
    lanes: list[str],
    target: Target,
    sizes: Sizes,
    url: str,
) -> dict:
    """``sizes.single_posts`` envelopes, one per request, ``len(lanes)`` requests in flight
    (one device per lane, posting its own envelopes in order): messages per second, and the
    CPU milliseconds per post of the server and (PostgreSQL on this host) the database."""
    per_lane = sizes.single_posts // len(lanes)
    work = {
        who: [
            envelope(op, who, state, secret, n, BODY).to_bytes()
            for n in take_counters(op, who, per_lane)
        ]
        for who in lanes
    }

    async def lane(who: str) -> list[int]:
        api = op.actors[who].api
        return [await api.post_message(op.id, AREA, sealed) for sealed in work[who]]

    db_before = await database_cpu(url)
    groups_before = await histogram(target, GROUP_SIZE)
    own_cpu = time.process_time()
    cpu_before, start = sum(map(cpu_seconds, target.pids)), time.perf_counter()
    seqs = [seq for lane_seqs in await asyncio.gather(*map(lane, lanes)) for seq in lane_seqs]
    elapsed = time.perf_counter() - start
    cpu = sum(map(cpu_seconds, target.pids)) - cpu_before
    db_after = await database_cpu(url)
    groups_after = await histogram(target, GROUP_SIZE)
    posts, groups = (a - b for a, b in zip(groups_after, groups_before, strict=True))
    assert len(set(seqs)) == per_lane * len(lanes), len(set(seqs))
    figures = {
        "single_post_msgs_per_s": round(len(seqs) / elapsed),
        "server_cpu_ms_per_single_post": round(cpu / len(seqs) * 1000, 2),
        "load_generator_cpu_ms_per_single_post": round(
            (time.process_time() - own_cpu) / len(seqs) * 1000, 2
        ),
        "single_posts_per_group": round(posts / groups, 1) if groups else 0.0,
    }
    if db_after:
        db_cpu = sum(seconds - db_before.get(pid, 0.0) for pid, seconds in db_after.items())
        figures["single_post_db_cpu_ms"] = round(db_cpu / len(seqs) * 1000, 2)
    return figures


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class ArrivalClock:
    """When each event frame reached each subscriber, by the event's sequence number: noted
    in the subscribers' ``data_received`` with no task per subscriber, so that 500 readers
    cost this process little of the two cores the servers measured share."""

    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.times: dict[int, list[float]] = defaultdict(list)
        self.complete: dict[int, asyncio.Future[list[float]]] = {}

    def note(self, now: float, payload: bytes) -> None:
        start = payload.find(b'"seq":')
        if start < 0:
            return
        seq = int(payload[start + 6 : payload.find(b",", start)])
        times = self.times[seq]
        times.append(now)
        if len(times) == self.subscribers and seq in self.complete:
            self.complete[seq].set_result(times)

    async def all_of(self, seq: int) -> list[float]:
        """The arrival times of event ``seq`` at every subscriber, once it reached them all."""
        if len(self.times[seq]) < self.subscribers:
            self.complete[seq] = asyncio.get_running_loop().create_future()
            await self.complete[seq]
        return self.times[seq]


class RawSubscriber(asyncio.Protocol):
    """A bare WebSocket reader that notes when frames arrive, so the 500 subscribers of the
    fan-out figure cost this process almost nothing and the figure is the server's."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.arrivals: list[tuple[float, bytes]] = []
        self.changed = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self.clock: ArrivalClock | None = None
        """Once set, event frames are noted there (not kept here)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.handshake.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.handshake.set_result(bytes(self.buffer[:end]))
            del self.buffer[: end + 4]
        while (frame := self._frame()) is not None:
            opcode, payload = frame
            if opcode == 1 and self.clock is not None:
                self.clock.note(now, payload)
            elif opcode == 1:
                self.arrivals.append((now, payload))
                self.changed.set()
            elif opcode == 9 and self.transport is not None:  # ping: answer with a masked pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + bytes(4) + payload)

    def _frame(self) -> tuple[int, bytes] | None:
        if len(self.buffer) < 2:
            return None
        opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            if len(self.buffer) < 4:
                return None
            length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
        elif length == 127:
            if len(self.buffer) < 10:
                return None
            length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
        if len(self.buffer) < offset + length:
            return None
        payload = bytes(self.buffer[offset : offset + length])
        del self.buffer[: offset + length]
        return opcode, payload

    async def arrival_of(self, marker: bytes) -> float:
        while True:
            for when, payload in self.arrivals:
                if marker in payload:
                    return when
            self.changed.clear()
            await self.changed.wait()


async def raw_subscriber(
    url: str, token: str, cursor: str, tls: ssl.SSLContext | None
) -> RawSubscriber:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, sub = await loop.create_connection(RawSubscriber, parts.hostname, parts.port, ssl=tls)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/v1/stream?cursor={cursor} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    assert sub.transport is not None
    sub.transport.write(request.encode())
    status = await asyncio.wait_for(sub.handshake, 10)
    assert b" 101 " in status.split(b"\r\n")[0], status
    await asyncio.wait_for(sub.arrival_of(b'"type":"idle"'), 10)
    return sub


async def open_subscribers(
    op: Operation, count: int, tls: ssl.SSLContext | None
) -> list[RawSubscriber]:
    """``count`` WebSocket streams of the reader device, each caught up (``idle``)."""
    api = op.actors[READER].api
    cursor = (await api.sync(limit=5000)).cursor
    while (page := await api.sync(cursor, limit=5000)).events:
        cursor = page.cursor
    assert api.token is not None
    subscribers: list[RawSubscriber] = []
    for start in range(0, count, 50):
        subscribers += await asyncio.gather(
            *(
                raw_subscriber(api.base_url, api.token, cursor, tls)
                for _ in range(min(50, count - start))
            )
        )
    return subscribers


async def measure_fanout(
    op: Operation, state: Any, secret: bytes, target: Target, sizes: Sizes
) -> dict:
    """One message to ``sizes.subscribers`` idle streams: delivery time to each of them, and
    the server memory each idle stream costs."""
    await asyncio.sleep(1)
    before = sum(map(rss_kib, target.pids))
    subscribers = await open_subscribers(op, sizes.subscribers, target.ssl)
    await asyncio.sleep(1)
    idle_kib = (sum(map(rss_kib, target.pids)) - before) / len(subscribers)
    poster = op.actors[POSTERS[0]].api
    delays: list[float] = []
    before_metrics = await fanout_metrics(target)
    clock = ArrivalClock(len(subscribers))
    for sub in subscribers:
        sub.clock = clock
    cpu_before, own_cpu = sum(map(cpu_seconds, target.pids)), time.process_time()
    gc.disable()  # as timeit does: a collection in this process would delay the readers
    try:
        for _ in range(sizes.fanout_messages):
            [n] = take_counters(op, POSTERS[0], 1)
            sealed = envelope(op, POSTERS[0], state, secret, n, "fan-out", message_id=uuid.uuid4())
            start = time.perf_counter()
            seq = await poster.post_message(op.id, AREA, sealed.to_bytes())
            arrivals = await asyncio.wait_for(clock.all_of(seq), 30)
            delays += [(when - start) * 1000 for when in arrivals]
        cpu_ms = (sum(map(cpu_seconds, target.pids)) - cpu_before) * 1000
        own_ms = (time.process_time() - own_cpu) * 1000
    finally:
        gc.enable()
        for sub in subscribers:
            if sub.transport is not None:
                sub.transport.close()
    quantiles = statistics.quantiles(delays, n=100, method="inclusive")
    return {
        f"fanout_{sizes.subscribers}_p50_ms": round(statistics.median(delays), 1),
        f"fanout_{sizes.subscribers}_p99_ms": round(quantiles[98], 1),
        f"fanout_{sizes.subscribers}_server_mean_ms": await server_mean_ms(target, before_metrics),
        f"fanout_{sizes.subscribers}_server_cpu_ms": round(cpu_ms / sizes.fanout_messages, 1),
        f"fanout_{sizes.subscribers}_load_generator_cpu_ms": round(
            own_ms / sizes.fanout_messages, 1
        ),
        "ws_idle_kib": round(idle_kib, 1),
    }


async def histogram(target: Target, name: str) -> tuple[float, float]:
    """(sum, count) of the histogram ``name`` over all nodes, read from each node directly
    (nginx does not serve /metrics)."""
    values: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for node in target.nodes:
            async with session.get(node.url + "/metrics") as answer:
                answer.raise_for_status()
                text = await answer.text()
            for line in text.splitlines():
                if line.startswith(f"{name}_sum ") or line.startswith(f"{name}_count "):
                    field, value = line.split()
                    values[field] = values.get(field, 0.0) + float(value)
    return values.get(f"{name}_sum", 0.0), values.get(f"{name}_count", 0.0)


async def fanout_metrics(target: Target) -> tuple[float, float]:
    """(sum, count) of the nodes' ``opseal_stream_fanout_seconds`` histograms."""
    return await histogram(target, "opseal_stream_fanout_seconds")


async def server_mean_ms(target: Target, before: tuple[float, float]) -> float:
    """A node's own mean time, during the fan-out runs, to write to all its subscribers."""
    total, count = await fanout_metrics(target)
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
    parser.add_argument(
        "--only", choices=["single", "ingest", "fanout"], help="measure these figures only"
    )
    parser.add_argument(
        "--setups",
        default=",".join(SETUPS),
        help="comma-separated, of: %(default)s (the last two need PostgreSQL; nginx_2nodes nginx)",
    )
    parser.add_argument(
        "--fanout-messages", type=int, default=20, help="messages of the fan-out figures"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="leave out the sqlite setup")
    args = parser.parse_args()
    sizes = Sizes(2_000, 500, 50) if args.quick else Sizes(20_000, 500, 200)
    sizes = replace(sizes, only=args.only or "", fanout_messages=args.fanout_messages)
    setups = [s for s in args.setups.split(",") if s and not (args.no_sqlite and s == "sqlite")]
    if unknown := set(setups) - set(SETUPS):
        parser.error(f"--setups: unknown {sorted(unknown)}; expected some of {list(SETUPS)}")
    nginx = find_nginx()
    if "nginx_2nodes" in setups and nginx is None:
        print("nginx_2nodes: skipped, nginx is not installed (apt install nginx-light)")
    # The load generator's loop is uvloop's: the 500 fan-out subscribers stand for 500
    # devices, and reading all their TLS streams through asyncio's TLS layer (written in
    # Python) in this one process was itself a large part of the measured p99.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    results: dict[str, Any] = {}
    for setup in setups:
        if setup == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/opseal.db"
                results["sqlite"] = asyncio.run(run_backend(url, sizes))
        elif not args.postgres:
            print(f"{setup}: skipped, no --postgres URL (or OPSEAL_TEST_POSTGRES_URL)")
        elif setup == "postgresql":
            results["postgresql"] = asyncio.run(run_postgres(args.postgres, sizes))
        elif nginx is not None:
            results["nginx_2nodes"] = asyncio.run(run_nginx(args.postgres, nginx, sizes))
    for backend, figures in results.items():
        print(f"{backend}: {figures}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
