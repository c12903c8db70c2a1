"""Area storage (areas, rosters, commits, key packages), entries and the purge on every
backend, without the HTTP layer or the services' rules."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from opseal.server.storage import areas, audit, entries, retention

from .storage_seed import NOW, OP, device, entry, opened, operation, org, tx, user


@pytest.fixture
async def engine(database_url):
    """'wco' and 'fr' with one device each, and the operation with areas 'seizures' and 'intel'."""
    async with opened(database_url) as engine:
        async with tx(engine) as conn:
            for org_id, dev in (("wco", "dev-a"), ("fr", "dev-b")):
                await org(conn, org_id)
                await user(conn, org_id, f"u-{dev}", f"k-u-{dev}".encode())
                await device(conn, org_id, f"u-{dev}", dev, f"k-{dev}".encode())
            await operation(conn, area_names=("seizures", "intel"))
        yield engine


async def test_areas_start_empty_and_keep_their_head_and_group_state(engine):
    """New areas have no epoch, state or entries; the sequence head and group state read back."""
    async with tx(engine) as conn:
        area = await areas.lock(conn, OP, "seizures")
        assert (area.epoch, area.state, area.next_seq) == (None, None, 0)
        assert await areas.lock(conn, OP, "missing") is None
        assert await areas.move_next_seq(conn, OP, "seizures", 0, 7)
        assert not await areas.move_next_seq(conn, OP, "seizures", 6, 8)
        await areas.set_group_state(conn, OP, "seizures", 2, b"state")
    async with engine.connect() as conn:
        assert await areas.names(conn, OP) == {"seizures", "intel"}
        assert sorted(tuple(r) for r in await areas.of_operation(conn, OP)) == [
            ("intel", None, 0),
            ("seizures", 2, 7),
        ]
        assert sorted(tuple(r) for r in await areas.heads(conn)) == [
            (OP, "intel", 0),
            (OP, "seizures", 7),
        ]
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await areas.create(conn, OP, ["intel"], NOW)


async def test_a_roster_is_replaced_whole(engine):
    """Setting a roster replaces the previous one; membership, organisations and a device's
    areas follow it."""
    async with tx(engine) as conn:
        await areas.set_roster(conn, OP, "seizures", ["dev-a", "dev-b"])
        await areas.set_roster(conn, OP, "intel", ["dev-a"])
        await areas.set_roster(conn, OP, "seizures", ["dev-b"])
    async with engine.connect() as conn:
        assert await areas.roster(conn, OP, "seizures") == {"dev-b"}
        assert not await areas.is_member(conn, OP, "seizures", "dev-a")
        assert await areas.is_member(conn, OP, "intel", "dev-a")
        assert await areas.roster_orgs(conn, OP, "seizures") == [("dev-b", "fr")]
        assert await areas.areas_of_device(conn, "dev-a") == [(OP, "intel")]
        assert sorted(await areas.areas_of_device(conn, "dev-b")) == [(OP, "seizures")]


async def test_one_commit_per_epoch(engine):
    """A commit and its sealed secrets are stored; a second commit to the same epoch raises."""
    async with tx(engine) as conn:
        await areas.insert_commit(
            conn, OP, "seizures", epoch=0, seq=1, hash=b"h0", sealed=[("dev-a", b"s")]
        )
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await areas.insert_commit(
                conn, OP, "seizures", epoch=0, seq=2, hash=b"h0b", sealed=[("dev-b", b"s")]
            )


async def test_key_packages_keep_one_per_device_in_posting_order(engine):
    """A device's new key package replaces its old one; packages list by sequence number and
    admitted devices' packages are dropped."""
    async with tx(engine) as conn:
        await areas.replace_key_package(conn, OP, "seizures", "dev-a", b"kp-a1", 1, NOW)
        await areas.replace_key_package(conn, OP, "seizures", "dev-b", b"kp-b", 2, NOW)
        await areas.replace_key_package(conn, OP, "seizures", "dev-a", b"kp-a2", 3, NOW)
        await areas.replace_key_package(conn, OP, "intel", "dev-a", b"kp-intel", 1, NOW)
    async with tx(engine) as conn:
        assert await areas.key_package_bodies(conn, OP, "seizures") == [b"kp-b", b"kp-a2"]
        await areas.delete_key_packages(conn, OP, "seizures", ["dev-b"])
        assert await areas.key_package_bodies(conn, OP, "seizures") == [b"kp-a2"]
        assert await areas.key_package_bodies(conn, OP, "intel") == [b"kp-intel"]


async def test_entries_page_in_sequence_order(engine):
    """Entries after a position come in sequence order, at most the limit, and only the
    area's own."""
    async with tx(engine) as conn:
        await entries.append(conn, [entry(seq) for seq in (3, 1, 2, 5, 4)])
        await entries.append(conn, [entry(1, area="intel")])
    async with engine.connect() as conn:
        page = await entries.entries_after(conn, OP, "seizures", 0, 2)
        assert [row.seq for row in page] == [1, 2]
        page = await entries.entries_after(conn, OP, "seizures", 2, 10)
        assert [row.seq for row in page] == [3, 4, 5]
        assert page[0].body == b"body-3"
        assert page[0].created_at == NOW + 3
        assert await entries.entries_after(conn, OP, "seizures", 5, 10) == []
        assert [r.seq for r in await entries.entries_after(conn, OP, "intel", 0, 10)] == [1]


async def test_sequence_numbers_and_message_ids_are_unique(engine):
    """A used sequence number in an area, or a message id the same device used in the same
    area, raises; the same id from another device or in another area is stored."""
    async with tx(engine) as conn:
        await entries.append(conn, [entry(1, message_id="m-1")])
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await entries.append(conn, [entry(1)])
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await entries.append(conn, [entry(2, message_id="m-1")])
    async with tx(engine) as conn:
        await entries.append(conn, [{**entry(2, message_id="m-1"), "device_id": "dev-b"}])
        await entries.append(conn, [entry(1, area="intel", message_id="m-1")])
    async with engine.connect() as conn:
        assert len(await entries.entries_after(conn, OP, "seizures", 0, 10)) == 2
        assert len(await entries.entries_after(conn, OP, "intel", 0, 10)) == 1


async def test_recorded_entries_move_the_head_and_append_their_audit_leaves(engine):
    """``append_recorded`` (one statement on PostgreSQL) stores the rows as given, moves the
    area's head to the last one and appends the audit leaves after the log's last, in order;
    a used message id among them raises and writes none of it — no entry, no head, no leaf."""
    async with engine.connect() as conn:
        start = await audit.size(conn)
    leaves = audit.leaves_of([{"event": "message", "seq": 1}, {"event": "message", "seq": 2}], NOW)
    rows = [entry(1, message_id="m-1", epoch=None), entry(2, "receipt", body=b"r")]
    async with tx(engine) as conn:
        await entries.append_recorded(conn, OP, "seizures", rows, leaves, NOW)
    refused = [entry(3, message_id="m-3"), entry(4, message_id="m-1")]
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await entries.append_recorded(
                conn, OP, "seizures", refused, audit.leaves_of([{}, {}], NOW), NOW
            )
    async with engine.connect() as conn:
        stored = await entries.entries_after(conn, OP, "seizures", 0, 10)
        assert [dict(row._mapping) for row in stored] == rows
        assert (OP, "seizures", 2) in [tuple(head) for head in await areas.heads(conn)]
        assert await audit.size(conn) == start + 2
        assert await audit.leaves(conn, start, start + 2) == [
            (start + offset, entry_bytes, hashed)
            for offset, (entry_bytes, hashed) in enumerate(leaves)
        ]


async def test_recorded_entries_are_written_only_after_the_head_they_were_numbered_on(engine):
    """``append_recorded`` writes only if the area's head is the number before its first row.
    Rows numbered on an older head (another writer stored in the area since) raise
    ``AreaMoved`` and write nothing: no entry, no head move, no audit leaf. On PostgreSQL the
    one statement commits itself on a connection in autocommit, as a group of single posts
    writes it (design §13)."""
    async with engine.connect() as conn:
        start = await audit.size(conn)
    first = audit.leaves_of([{"event": "message", "seq": 1}], NOW)
    async with tx(engine) as conn:
        await entries.append_recorded(
            conn, OP, "seizures", [entry(1, message_id="m-1")], first, NOW
        )
    stale = [entry(1, message_id="m-2"), entry(2, message_id="m-3")]
    with pytest.raises(entries.AreaMoved):
        async with tx(engine) as conn:
            await entries.append_recorded(
                conn, OP, "seizures", stale, audit.leaves_of([{}, {}], NOW), NOW
            )
    with pytest.raises(entries.AreaMoved):  # ahead of the head: a gap is refused as well
        async with tx(engine) as conn:
            await entries.append_recorded(
                conn, OP, "seizures", [entry(3)], audit.leaves_of([{}], NOW), NOW
            )
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:  # autocommit: the statement is its transaction
            await entries.append_recorded(
                conn, OP, "seizures", [entry(2, message_id="m-2")], audit.leaves_of([{}], NOW), NOW
            )
        expected = ["m-1", "m-2"]
    else:
        expected = ["m-1"]
    async with engine.connect() as conn:
        stored = await entries.entries_after(conn, OP, "seizures", 0, 10)
        assert [row.message_id for row in stored] == expected
        assert (OP, "seizures", len(expected)) in [tuple(h) for h in await areas.heads(conn)]
        assert await audit.size(conn) == start + len(expected)


async def test_messages_are_found_by_id(engine):
    """Stored messages are found by id per sender within an area, and within an area as
    messages (the earlier of two senders' messages under one id)."""
    async with tx(engine) as conn:
        await entries.append(
            conn,
            [
                entry(1, message_id="m-1", body=b"one"),
                entry(2, "receipt", body=b"r"),
                {**entry(3, message_id="m-1", body=b"squat"), "device_id": "dev-b"},
                entry(1, area="intel", message_id="m-2"),
            ],
        )
    async with engine.connect() as conn:
        found = await entries.by_sender_message_ids(
            conn, OP, "seizures", "dev-a", ["m-1", "m-2", "m-9"]
        )
        assert sorted(found) == ["m-1"]
        assert (found["m-1"].seq, found["m-1"].body) == (1, b"one")
        other = await entries.by_sender_message_ids(conn, OP, "seizures", "dev-b", ["m-1"])
        assert other["m-1"].body == b"squat"
        assert await entries.by_sender_message_ids(conn, OP, "seizures", "dev-a", []) == {}
        mine = await entries.message(conn, OP, "seizures", "dev-a", "m-1")
        assert tuple(mine) == ("dev-a", b"one")
        theirs = await entries.message(conn, OP, "seizures", "dev-b", "m-1")
        assert tuple(theirs) == ("dev-b", b"squat")  # the same id, the other sender's message
        assert await entries.message(conn, OP, "seizures", "dev-a", "m-2") is None


async def test_commit_bodies_follow_an_epoch(engine):
    """Commits to epochs after the given one come oldest first; other kinds are left out."""
    async with tx(engine) as conn:
        await entries.append(
            conn,
            [
                entry(1, "commit", epoch=0, body=b"c0"),
                entry(2, "message", epoch=0),
                entry(3, "commit", epoch=1, body=b"c1"),
                entry(4, "commit", epoch=2, body=b"c2"),
            ],
        )
    async with engine.connect() as conn:
        assert await entries.commit_bodies(conn, OP, "seizures", -1) == [b"c0", b"c1", b"c2"]
        assert await entries.commit_bodies(conn, OP, "seizures", 0) == [b"c1", b"c2"]
        assert await entries.commit_bodies(conn, OP, "intel", -1) == []


async def test_the_purge_deletes_content_and_keeps_the_areas(engine):
    """Purging counts and deletes an operation's content, forgets group states and keeps the
    areas with their sequence heads."""
    async with tx(engine) as conn:
        await areas.set_roster(conn, OP, "seizures", ["dev-a", "dev-b"])
        await areas.insert_commit(
            conn, OP, "seizures", epoch=0, seq=1, hash=b"h", sealed=[("dev-a", b"s")]
        )
        await areas.set_group_state(conn, OP, "seizures", 0, b"state")
        await areas.replace_key_package(conn, OP, "intel", "dev-b", b"kp", 1, NOW)
        await entries.append(conn, [entry(1, "commit"), entry(2, message_id="m-1")])
        assert await areas.move_next_seq(conn, OP, "seizures", 0, 2)
        counts = await retention.purge_content(conn, OP)
    assert counts == {
        "receipts": 0,
        "blob_chunks": 0,
        "blobs": 0,
        "commit_secrets": 1,
        "commits": 1,
        "key_packages": 1,
        "events": 2,
        "area_members": 2,
    }
    async with engine.connect() as conn:
        area = await areas.lock(conn, OP, "seizures")
        assert (area.state, area.next_seq) == (None, 2)
        assert await entries.entries_after(conn, OP, "seizures", 0, 10) == []
        assert await areas.roster(conn, OP, "seizures") == set()
