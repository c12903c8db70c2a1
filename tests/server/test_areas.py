"""Areas on the server: commits, key packages, message batches, sync and the stream."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from opseal.client.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InvalidSignatureError,
    PhaseClosedError,
    WrongEpochError,
)
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.envelope import Envelope, open_envelope
from opseal.crypto.group import (
    Commit,
    KeyPackage,
    apply_commit,
    create_commit,
)
from opseal.server.errors import Conflict, CounterRefused, Forbidden, InvalidSignature, NotMember
from opseal.server.services import group_commit, identity
from opseal.server.services.areas import AreaRef, decode_cursor
from opseal.server.storage import entries
from opseal.wire.operations import CommitStored
from opseal.wire.stream import StreamEvent

from .conftest import ACTOR_ORGS
from .helpers import envelope, make_area


def now() -> int:
    return int(time.time())


async def test_members_exchange_messages_through_the_server(operation):
    """A customs officer posts; another administration syncs it and decrypts it."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    sent = envelope(operation, "customs", state, secret, 1, "1,200 fake tablets at CDG")
    seq = await operation.actors["customs"].api.post_message(
        operation.id, "seizures", sent.to_bytes()
    )
    page = await operation.actors["customs2"].api.sync()
    messages = [e for e in page.events if e.kind == "message"]
    assert [m.seq for m in messages] == [seq]
    received = Envelope.from_bytes(b64d(messages[0].body))
    assert open_envelope(received, state=state, epoch_secret=secret) == b"1,200 fake tablets at CDG"
    # The joining device validates the whole commit chain it receives.
    commits = await operation.actors["customs2"].api.commits(operation.id, "seizures")
    replayed = None
    for raw in commits:
        replayed = apply_commit(
            replayed,
            Commit.from_bytes(raw),
            operation.world.charter,
            now=now(),
            instance_id=operation.instance_id,
        )
    assert replayed == state


async def test_batch_is_idempotent_and_numbers_are_gap_free(operation):
    """A batch posted twice is stored once and gets its original sequence numbers back."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api = operation.actors["customs"].api
    batch = [envelope(operation, "customs", state, secret, n).to_bytes() for n in range(1, 51)]
    first = await api.post_batch(operation.id, "seizures", batch)
    again = await api.post_batch(operation.id, "seizures", batch)
    assert first == again
    assert first == list(range(first[0], first[0] + 50))
    events = await api.events(operation.id, "seizures", limit=5000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.kind == "message" for e in events) == 50


async def test_concurrent_identical_batches_are_stored_once(operation):
    """Two copies of one batch racing each other store it once; both get the same numbers."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api = operation.actors["customs"].api
    batch = [envelope(operation, "customs", state, secret, n).to_bytes() for n in range(1, 101)]
    results = await asyncio.gather(
        api.post_batch(operation.id, "seizures", batch),
        api.post_batch(operation.id, "seizures", batch),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, list)]
    assert ok, results
    assert all(r == ok[0] for r in ok)
    events = await api.events(operation.id, "seizures", limit=5000)
    assert sum(e.kind == "message" for e in events) == 100


async def test_batch_with_one_bad_envelope_stores_nothing(operation):
    """One envelope with a bad signature rejects the whole batch, naming its index."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api = operation.actors["customs"].api
    good = [envelope(operation, "customs", state, secret, n) for n in (1, 2, 3)]
    forged = Envelope(good[1].header, good[1].ciphertext, bytes(64))
    batch = [good[0].to_bytes(), forged.to_bytes(), good[2].to_bytes()]
    with pytest.raises(InvalidSignatureError, match=r"envelopes\[1\]") as info:
        await api.post_batch(operation.id, "seizures", batch)
    assert info.value.details["index"] == 1
    events = await api.events(operation.id, "seizures")
    assert not [e for e in events if e.kind == "message"]


async def test_message_id_reused_with_other_content_is_a_conflict(operation):
    """The same message id cannot carry two different messages."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api = operation.actors["customs"].api
    message_id = uuid.uuid4()
    await api.post_message(
        operation.id,
        "seizures",
        envelope(operation, "customs", state, secret, 1, "a", message_id=message_id).to_bytes(),
    )
    with pytest.raises(ConflictError, match="already used"):
        await api.post_message(
            operation.id,
            "seizures",
            envelope(operation, "customs", state, secret, 2, "b", message_id=message_id).to_bytes(),
        )


async def test_a_new_counter_under_a_used_message_id_in_a_batch_is_a_conflict(operation):
    """A batch whose envelope reuses a stored id under a new counter is refused as a conflict
    naming it (the id is not looked up first: the unique key catches it), nothing stored; the
    same batch without it is then stored as usual."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api = operation.actors["customs"].api
    used = uuid.uuid4()
    await api.post_batch(
        operation.id,
        "seizures",
        [envelope(operation, "customs", state, secret, 1, "a", message_id=used).to_bytes()],
    )
    fresh = envelope(operation, "customs", state, secret, 2, "b").to_bytes()
    reused = envelope(operation, "customs", state, secret, 3, "c", message_id=used).to_bytes()
    with pytest.raises(ConflictError, match=r"envelopes\[1\]: message id already used") as info:
        await api.post_batch(operation.id, "seizures", [fresh, reused])
    assert info.value.details["index"] == 1
    events = await api.events(operation.id, "seizures", limit=5000)
    assert sum(e.kind == "message" for e in events) == 1
    [seq] = await api.post_batch(operation.id, "seizures", [fresh])
    assert seq == events[-1].seq + 1


async def test_message_for_an_old_epoch_is_refused(operation):
    """After a rotation, envelopes of the previous epoch get wrong_epoch."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    coordinator = operation.actors["coordinator"]
    commit, _, _ = create_commit(state, operation.world.charter, coordinator.identity, now=now())
    await coordinator.api.post_commit(operation.id, "seizures", commit.to_bytes())
    with pytest.raises(WrongEpochError, match="not the area's current epoch"):
        await operation.actors["customs"].api.post_message(
            operation.id, "seizures", envelope(operation, "customs", state, secret, 1).to_bytes()
        )


async def test_concurrent_commits_for_one_epoch_exactly_one_wins(operation):
    """Two commits to the same next epoch: one is stored, the other gets wrong_epoch."""
    state, _ = await make_area(operation, "seizures", ["customs"])
    coordinator, officer = operation.actors["coordinator"], operation.actors["customs"]
    c1, _, _ = create_commit(state, operation.world.charter, coordinator.identity, now=now())
    c2, _, _ = create_commit(state, operation.world.charter, officer.identity, now=now())
    results = await asyncio.gather(
        coordinator.api.post_commit(operation.id, "seizures", c1.to_bytes()),
        officer.api.post_commit(operation.id, "seizures", c2.to_bytes()),
        return_exceptions=True,
    )
    assert sum(isinstance(r, CommitStored) for r in results) == 1
    assert sum(isinstance(r, WrongEpochError) for r in results) == 1


async def test_server_refuses_a_commit_admitting_a_stakeholder_to_customs_area(operation):
    """Defence in depth: the server validates commits with the crypto core too."""
    state, _ = await make_area(operation, "seizures", ["customs"])
    coordinator = operation.actors["coordinator"]
    with pytest.raises(ForbiddenError, match="may not read area 'seizures'"):
        await operation.actors["stakeholder"].api.post_key_package(
            operation.id, "seizures", operation.package("stakeholder", "seizures")
        )
    package = KeyPackage.from_bytes(operation.package("stakeholder", "seizures"))
    draft, _, _ = create_commit(state, operation.world.charter, coordinator.identity, now=now())
    from dataclasses import replace

    forged = replace(draft, adds=(package,))
    forged = replace(forged, signature=coordinator.identity.signing_key.sign(forged.to_be_signed()))
    with pytest.raises(BadRequestError, match="may not read area 'seizures'"):
        await coordinator.api.post_commit(operation.id, "seizures", forged.to_bytes())


async def test_closed_operation_accepts_nothing(operation):
    """After the coordinator closes the operation, posts are refused with phase_closed."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    await operation.actors["coordinator"].api.set_phase(operation.id, "closed")
    with pytest.raises(PhaseClosedError):
        await operation.actors["customs"].api.post_message(
            operation.id, "seizures", envelope(operation, "customs", state, secret, 1).to_bytes()
        )
    events = await operation.actors["customs"].api.events(operation.id, "seizures")
    assert events  # still readable


async def test_sender_must_be_the_authenticated_device(operation):
    """An envelope naming another sender is refused."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    theirs = envelope(operation, "customs2", state, secret, 1).to_bytes()
    with pytest.raises(ForbiddenError, match="sender is not the authenticated device"):
        await operation.actors["customs"].api.post_message(operation.id, "seizures", theirs)


async def test_stream_delivers_in_order_and_resumes_from_cursor(operation):
    """A WebSocket subscriber receives each message once, in order, across a reconnect."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    poster, reader = operation.actors["customs"].api, operation.actors["customs2"].api
    start = (await reader.sync()).cursor
    received: list[int] = []
    cursor = start

    async def follow(stop_after: int) -> str:
        last = cursor
        async for message in reader.stream(cursor):
            if isinstance(message, StreamEvent) and message.event.kind == "message":
                received.append(message.event.seq)
                last = message.cursor
                if len(received) >= stop_after:
                    return last
        return last

    task = asyncio.create_task(follow(3))
    for n in range(1, 4):
        await poster.post_message(
            operation.id, "seizures", envelope(operation, "customs", state, secret, n).to_bytes()
        )
    cursor = await asyncio.wait_for(task, 15)
    for n in range(4, 7):  # posted while nobody listens
        await poster.post_message(
            operation.id, "seizures", envelope(operation, "customs", state, secret, n).to_bytes()
        )
    await asyncio.wait_for(follow(6), 15)
    assert len(received) == 6
    assert received == sorted(set(received))


async def test_one_delivery_gives_each_stream_the_cursor_of_its_own_areas(operation):
    """Streams reading different areas share one delivery of an entry: each gets the cursor
    of its own areas (the frame is shared only among streams whose cursor was the same)."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2", "partner"])
    await make_area(operation, "plan", ["coordinator", "customs", "customs2"])
    readers = ("customs", "customs2", "partner")
    starts = {who: (await operation.actors[who].api.sync()).cursor for who in readers}

    async def first_message(who: str) -> str:
        async for message in operation.actors[who].api.stream(starts[who]):
            if isinstance(message, StreamEvent) and message.event.kind == "message":
                return message.cursor
        raise AssertionError("the stream ended")

    tasks = {who: asyncio.create_task(first_message(who)) for who in readers}
    await asyncio.sleep(0.5)  # the streams are open and caught up
    sealed = envelope(operation, "customs", state, secret, 1).to_bytes()
    seq = await operation.actors["customs"].api.post_message(operation.id, "seizures", sealed)
    cursors = {who: await asyncio.wait_for(task, 10) for who, task in tasks.items()}
    positions = {who: decode_cursor(cursor) for who, cursor in cursors.items()}
    seizures, plan = AreaRef(operation.id, "seizures"), AreaRef(operation.id, "plan")
    assert positions["partner"] == {seizures: seq}
    for who in ("customs", "customs2"):
        assert positions[who][seizures] == seq
        assert positions[who][plan] == decode_cursor(starts[who])[plan]
    assert cursors["customs"] == cursors["customs2"]  # same areas, same positions
    for who in readers:  # resuming from it gives nothing again
        page = await operation.actors[who].api.sync(cursors[who])
        assert [e for e in page.events if e.area == "seizures"] == []


async def test_posts_parsed_in_the_next_turns_of_the_loop_join_the_group(operation):
    """Requests already received reach the queue a turn or two apart (each is parsed and checked
    first): the drain waits while the queue grows, so twelve posts arriving over three turns
    are stored in one transaction (the group size's histogram, on /metrics), numbered in order
    of arrival — and a lone post is committed alone, without waiting for company."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    ctx, ref = operation.server.ctx, AreaRef(operation.id, "seizures")
    customs = await identity.authenticate(ctx, operation.actors["customs"].api.token or "")
    sealed = [envelope(operation, "customs", state, secret, n) for n in range(1, 14)]

    async def arriving(turns: int, post: Envelope) -> int:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await group_commit.post_message(ctx, customs, ref, b64e(post.to_bytes()))

    def groups() -> tuple[float, float]:
        samples = {
            s.name: s.value
            for s in group_commit.GROUP_SIZE.collect()[0].samples
            if s.name.endswith(("_count", "_sum"))
        }
        return samples["opseal_single_post_group_size_count"], samples[
            "opseal_single_post_group_size_sum"
        ]

    count, total = groups()
    seqs = await asyncio.gather(*(arriving(n // 4, post) for n, post in enumerate(sealed[:12])))
    assert seqs == list(range(seqs[0], seqs[0] + 12))
    assert groups() == (count + 1, total + 12)
    assert await group_commit.post_message(ctx, customs, ref, b64e(sealed[12].to_bytes())) == (
        seqs[-1] + 1
    )
    assert groups() == (count + 2, total + 13)


async def test_a_removed_organisation_s_device_left_on_the_roster_cannot_post_in_a_group(operation):
    """Charter version 2 drops the partner's organisation; its device is still on the area's
    roster. Posting in the same group as a member's post, it is refused as no member (the
    group reads each organisation's membership with the roster, per organisation), and the
    member's post is stored."""
    state, secret = await make_area(operation, "seizures", ["customs", "partner"])
    ctx, ref = operation.server.ctx, AreaRef(operation.id, "seizures")
    who = {
        name: await identity.authenticate(ctx, operation.actors[name].api.token or "")
        for name in ("customs", "partner")
    }
    charter = operation.world.charter
    members = [m for m in charter.members if m.organisation_id != ACTOR_ORGS["partner"]]
    coordinator = operation.world.user("wco", "ocu-lead")
    v2 = charter.next_version(issued_at=int(time.time()) - 1, members=members)
    signed = v2.signed(coordinator.key, coordinator.cert)
    await operation.actors["coordinator"].api.publish_charter(operation.id, signed.to_bytes())
    posts = [("partner", envelope(operation, "partner", state, secret, 1)),
             ("customs", envelope(operation, "customs", state, secret, 1))]  # fmt: skip
    answers = await asyncio.gather(
        *(group_commit.post_message(ctx, who[n], ref, b64e(e.to_bytes())) for n, e in posts),
        return_exceptions=True,
    )
    assert isinstance(answers[0], NotMember), answers
    assert isinstance(answers[1], int)


def forged(sealed: Envelope) -> Envelope:
    """``sealed`` with its signature replaced by another valid-looking one."""
    return Envelope(sealed.header, sealed.ciphertext, bytes(reversed(sealed.signature)))


async def test_single_posts_committed_as_one_group_each_get_their_own_answer(operation):
    """Single posts queued together are judged one by one in one transaction: each gets its own
    number, a repeat of an envelope in the same group its first number, the same id with other
    bytes 409, a counter not above the one just stored, a non-roster device and a forged
    signature their own refusals — and the good posts are stored all the same (the forged
    post's counter is not used up)."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    ctx, ref = operation.server.ctx, AreaRef(operation.id, "seizures")
    who = {
        name: await identity.authenticate(ctx, operation.actors[name].api.token or "")
        for name in ("customs", "customs2")
    }
    first = envelope(operation, "customs", state, secret, 1)
    reused = envelope(operation, "customs", state, secret, 2, "other", first.header.message_id)
    posts = [
        ("customs", first),
        ("customs", first),
        ("customs", reused),
        ("customs", envelope(operation, "customs", state, secret, 1)),
        ("customs2", envelope(operation, "customs2", state, secret, 1)),
        ("customs", forged(envelope(operation, "customs", state, secret, 4))),
        ("customs", envelope(operation, "customs", state, secret, 3)),
    ]  # fmt: skip
    answers = await asyncio.gather(
        *(group_commit.post_message(ctx, who[n], ref, b64e(e.to_bytes())) for n, e in posts),
        return_exceptions=True,
    )
    seq = answers[0]
    assert isinstance(seq, int)
    assert answers[1] == seq
    assert answers[6] == seq + 1
    refusals = [Conflict, CounterRefused, Forbidden, InvalidSignature]
    assert [type(a) for a in answers[2:6]] == refusals
    stored = await operation.actors["customs"].api.events(operation.id, "seizures", after=seq - 1)
    assert [(e.seq, e.message_id) for e in stored] == [
        (seq, str(first.header.message_id)),
        (seq + 1, str(posts[6][1].header.message_id)),
    ]


async def test_a_group_raced_by_another_write_to_its_area_is_judged_again(operation, monkeypatch):
    """On PostgreSQL a group of single posts is judged on autocommit reads and written only if
    the area has not moved since (design §13). A member's national system stores a batch with
    higher counters between the group's reads and its write — the race a hostile member would
    try in order to have an old counter accepted. The group's write stores nothing; the group
    is judged again under the area's lock, so its post is refused as the counter it now is and
    a post with a new counter in the same group is stored after the batch: numbers gap-free."""
    ctx, ref = operation.server.ctx, AreaRef(operation.id, "seizures")
    if not ctx.settings.is_postgres:
        pytest.skip("SQLite judges every group under its write lock")
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    customs = await identity.authenticate(ctx, operation.actors["customs"].api.token or "")
    customs2 = await identity.authenticate(ctx, operation.actors["customs2"].api.token or "")
    batch = [envelope(operation, "customs", state, secret, n) for n in (2, 3)]
    read, raced = entries.senders_in_roster, []

    async def racing(*args: object) -> object:
        rows = await read(*args)
        if not raced:  # once: the group's read, before its write
            raced.append(await operation.actors["customs"].api.post_batch(
                operation.id, "seizures", [e.to_bytes() for e in batch]
            ))  # fmt: skip
        return rows

    monkeypatch.setattr(entries, "senders_in_roster", racing)
    old = envelope(operation, "customs", state, secret, 1)
    other = envelope(operation, "customs2", state, secret, 1)
    answers = await asyncio.gather(
        group_commit.post_message(ctx, customs, ref, b64e(old.to_bytes())),
        group_commit.post_message(ctx, customs2, ref, b64e(other.to_bytes())),
        return_exceptions=True,
    )
    [[first, second]] = raced
    assert isinstance(answers[0], CounterRefused), answers
    assert answers[1] == second + 1
    stored = await operation.actors["customs"].api.events(operation.id, "seizures", after=0)
    messages = [(e.seq, e.message_id) for e in stored if e.kind == "message"]
    assert messages == [
        (first, str(batch[0].header.message_id)),
        (second, str(batch[1].header.message_id)),
        (second + 1, str(other.header.message_id)),
    ]
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
