"""Real server processes: two nodes on one PostgreSQL database, and a crash mid-batch.

These run the installed ``opseal-server serve`` as subprocesses (see :mod:`.procs`), so they
cover what in-process tests cannot: ``LISTEN/NOTIFY`` between nodes, and a process killed with
SIGKILL while a batch transaction is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from opseal.client.api import ApiClient
from opseal.client.errors import ApiError, TransportError
from opseal.server.bus import Event as BusEvent
from opseal.server.bus.postgres import PostgresBus
from opseal.server.http.stream import POLL_SECONDS
from opseal.wire.audit import AuditEntry
from opseal.wire.operations import Event
from opseal.wire.stream import StreamEvent

from .conftest import PG_URL, Operation, fresh_database
from .helpers import envelope, make_area, remove_partner_read_right
from .procs import Node, ServerProcess, admin_context, open_operation, prepare_database

AREA = "seizures"
KILL_DELAYS = (0.005, 0.02, 0.04, 0.07, 0.1, 0.15)
"""Seconds between starting a 500-envelope post and the SIGKILL (a batch takes ~0.1 s)."""


class Subscriber:
    """Follows a device's stream in a task; keeps the message numbers and the last cursor."""

    def __init__(self, api: ApiClient, cursor: str) -> None:
        self.api, self.cursor = api, cursor
        self.seqs: list[int] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        try:
            async for message in self.api.stream(self.cursor):
                if isinstance(message, StreamEvent):
                    if message.event.kind == "message":
                        self.seqs.append(message.event.seq)
                    self.cursor = message.cursor
                    self._changed.set()
        finally:
            self._changed.set()  # wake a waiter when the stream ends too

    async def wait_for(self, count: int, timeout: float = 15.0) -> None:
        """Until ``count`` messages arrived in all (fails after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while len(self.seqs) < count:
                if self._task.done():
                    self._task.result()  # raises the stream's error, if it had one
                    raise AssertionError(f"the stream ended after {len(self.seqs)} messages")
                self._changed.clear()
                await self._changed.wait()

    async def disconnect(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> Subscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


async def _post(
    op: Operation, api: ApiClient, state: Any, secret: bytes, count: int, who: str = "customs"
) -> list[int]:
    counters: dict[str, int] = op.__dict__.setdefault("counters", {})
    first = counters.get(who, 0) + 1  # a sender's counters rise (issue 12)
    counters[who] = first + count - 1
    batch = [envelope(op, who, state, secret, n).to_bytes() for n in range(first, first + count)]
    if count == 1:
        return [await api.post_message(op.id, AREA, batch[0])]
    return await api.post_batch(op.id, AREA, batch)


@pytest.fixture
async def pg_database(tmp_path) -> AsyncIterator[str]:
    """A fresh, migrated and initialised PostgreSQL database."""
    if not PG_URL:
        pytest.skip("OPSEAL_TEST_POSTGRES_URL is not set")
    async for url in fresh_database("postgresql", tmp_path):
        await prepare_database(url)
        yield url


async def test_two_nodes_deliver_each_others_messages_once_in_order(pg_database):
    """A subscriber on node B receives what node A stores, in order and once, and resumes."""
    async with (
        ServerProcess(pg_database) as proc_a,
        ServerProcess(pg_database) as proc_b,
        admin_context(pg_database) as ctx,
    ):
        node_a, node_b = Node(proc_a.url, ctx), Node(proc_b.url, ctx)
        try:
            await _deliver_across_nodes(await open_operation(node_a), node_a, node_b)
        finally:
            await node_a.close()
            await node_b.close()


async def _deliver_across_nodes(op: Operation, node_a: Node, node_b: Node) -> None:
    state, secret = await make_area(op, AREA, ["customs", "customs2", "partner"])
    poster, reader = op.actors["customs"].api, op.actors["customs2"].api
    start = (await reader.sync()).cursor
    async with Subscriber(await node_b.client(token=reader.token), start) as subscriber:
        posted: list[int] = []
        for _ in range(5):  # were wake-ups not crossing nodes, each would wait for a poll
            started = time.monotonic()
            posted += await _post(op, poster, state, secret, 1)
            await subscriber.wait_for(len(posted), timeout=2 * POLL_SECONDS)
            assert time.monotonic() - started < POLL_SECONDS / 2
        senders = {
            "customs": poster,
            "customs2": reader,
            "coordinator": op.actors["coordinator"].api,
        }
        batches = await asyncio.gather(
            *(_post(op, api, state, secret, 50, who) for who, api in senders.items())
        )
        posted += [seq for seqs in batches for seq in seqs]
        await subscriber.wait_for(len(posted))
    assert sorted(posted) == list(range(posted[0], posted[0] + 155))
    assert subscriber.seqs == sorted(posted)

    missed = [seq for _ in range(3) for seq in await _post(op, poster, state, secret, 40)]
    async with Subscriber(await node_a.client(token=reader.token), subscriber.cursor) as resumed:
        await resumed.wait_for(len(missed))
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    assert resumed.seqs == missed == list(range(max(posted) + 1, max(posted) + 121))
    await _read_right_removed_on_the_other_node(op, node_b, state, secret)


async def _read_right_removed_on_the_other_node(
    op: Operation, node_b: Node, state: Any, secret: bytes
) -> None:
    """Node A publishes a charter version taking the partner's read right: the partner's
    stream on node B, whose hub cached the old version, gets nothing posted after it."""
    poster, partner = op.actors["customs"].api, op.actors["partner"].api
    start = (await partner.sync()).cursor
    async with Subscriber(await node_b.client(token=partner.token), start) as follower:
        await _post(op, poster, state, secret, 1)
        await follower.wait_for(1)  # node B's hub now holds version 1
        await remove_partner_read_right(op)
        await _post(op, poster, state, secret, 1)
        await asyncio.sleep(0.5)  # well below node B's poll
    assert len(follower.seqs) == 1


async def _post_and_kill(proc: ServerProcess, token: str | None, op: Operation,
                         batch: list[bytes], delay: float) -> bool:  # fmt: skip
    """Post ``batch``, SIGKILL the server after ``delay`` s; True if that cut the request."""
    async with ApiClient(proc.url, timeout=5) as api:
        api.token = token
        posting = asyncio.create_task(api.post_batch(op.id, AREA, batch))
        await asyncio.sleep(delay)
        await proc.kill()
        try:
            await posting
        except TransportError as exc:
            return not isinstance(exc.__cause__, aiohttp.ClientConnectorError)
    return False


async def _stored_messages(api: ApiClient, op: Operation) -> list[int]:
    """The area's message numbers, after checking the whole area is numbered without gaps."""
    events: list[Event] = []
    while page := await api.events(op.id, AREA, after=len(events), limit=5000):
        events += page
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    return [e.seq for e in events if e.kind == "message"]


async def _audited_messages(api: ApiClient, op: Operation) -> list[int]:
    """Sequence numbers of the area's "message" audit entries, checking the log is whole."""
    size = (await api.audit_checkpoint()).size
    entries: list[AuditEntry] = []
    while len(entries) < size:
        entries += await api.audit_entries(len(entries), min(size, len(entries) + 1000))
    assert [e.index for e in entries] == list(range(size))
    return [
        e.entry["seq"]
        for e in entries
        if e.entry and e.entry["event"] == "message" and e.entry["area"] == AREA
    ]


async def test_killed_server_stores_a_batch_all_or_nothing(database_url):
    """A server killed mid-batch keeps all of it or none, and the retry stores it exactly once."""
    async with ServerProcess(database_url) as proc, admin_context(database_url) as ctx:
        node = Node(proc.url, ctx)
        try:
            op = await open_operation(node)
            state, secret = await make_area(op, AREA, ["customs"])
            api = op.actors["customs"].api
            cut = 0
            for round_, delay in enumerate(KILL_DELAYS, 1):
                batch = [
                    envelope(op, "customs", state, secret, n, "x" * 1000).to_bytes()
                    for n in range(500 * round_ - 499, 500 * round_ + 1)
                ]
                cut += await _post_and_kill(proc, api.token, op, batch, delay)
                await proc.start()
                before = await _stored_messages(api, op)
                assert len(before) in (500 * (round_ - 1), 500 * round_), delay
                assert await _audited_messages(api, op) == before
                seqs = await api.post_batch(op.id, AREA, batch)
                assert seqs == list(range(seqs[0], seqs[0] + 500))
                after = await _stored_messages(api, op)
                assert len(after) == 500 * round_
                assert await _audited_messages(api, op) == after
            assert cut, "no kill landed while a request was in flight"
        finally:
            await node.close()


async def _post_until_killed(
    op: Operation, api: ApiClient, who: str, state: Any, secret: bytes, counter: list[int],
    answered: dict[str, int],
) -> None:  # fmt: skip
    """Post single messages one after another until the server dies; note each 2xx answer."""
    while True:
        counter[0] += 1  # the next counter of ``who``, taken in sending order
        sealed = envelope(op, who, state, secret, counter[0], "single")
        try:
            seq = await api.post_message(op.id, AREA, sealed.to_bytes())
        except TransportError:
            return
        except ApiError:  # a counter overtaken by a concurrent post of the same device
            continue
        answered[str(sealed.header.message_id)] = seq


async def test_killed_server_keeps_every_answered_single_post(database_url):
    """Under 64 concurrent single posts a server killed with SIGKILL keeps every post it
    answered 2xx — stored under the number it answered, and audited — so no answer came
    before its group's transaction committed; the area stays numbered without gaps."""
    async with ServerProcess(database_url) as proc, admin_context(database_url) as ctx:
        node = Node(proc.url, ctx)
        try:
            op = await open_operation(node)
            state, secret = await make_area(op, AREA, ["customs", "customs2"])
            answered: dict[str, int] = {}
            posters = [
                _post_until_killed(op, op.actors[who].api, who, state, secret, counter, answered)
                for who, counter in (("customs", [0]), ("customs2", [0]))
                for _ in range(32)
            ]
            posting = asyncio.gather(*posters)
            while len(answered) < 200:
                await asyncio.sleep(0.01)
            await proc.kill()  # with about 64 posts in flight
            await posting
            await proc.start()
            api = op.actors["customs"].api
            stored = await _stored_messages(api, op)
            assert await _audited_messages(api, op) == stored
            events = await api.events(op.id, AREA, limit=5000)
            by_id = {e.message_id: e.seq for e in events if e.kind == "message"}
            assert {m: by_id.get(m) for m in answered} == answered
        finally:
            await node.close()


async def test_notifications_queued_while_one_is_sent_reach_the_other_node_in_order(pg_database):
    """A node answers a write once it committed and notifies the other nodes after: those
    published while one is on its way go out together, the newest per area (an event means
    "up to seq"), in order; and a node stopping sends what it published before it closes."""
    sender, listener = PostgresBus(pg_database), PostgresBus(pg_database)
    await sender.start()
    await listener.start()
    heard = listener.subscribe()
    try:
        for seq in range(1, 41):
            await sender.publish(BusEvent("op", "seizures", seq))
            if seq % 2:
                await sender.publish(BusEvent("op", "intel", seq))
    finally:
        await sender.close()  # before the notifications were all sent
    last: dict[str, list[int]] = {"seizures": [], "intel": []}
    try:
        while last["seizures"][-1:] != [40] or last["intel"][-1:] != [39]:
            event = await asyncio.wait_for(heard.get(), 10)
            assert event.remote
            last[event.area].append(event.seq)
    finally:
        await listener.close()
    for seqs in last.values():
        assert seqs == sorted(set(seqs)), last
