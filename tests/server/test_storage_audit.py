"""Audit-log and instance storage on every backend, without the services' rules."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import IntegrityError

from opseal.crypto.merkle import leaf_hash
from opseal.server.storage import audit, instance

from .storage_seed import NOW, opened, tx


@pytest.fixture
async def engine(database_url):
    async with opened(database_url) as engine:
        yield engine


async def test_appends_get_gap_free_indexes_in_order(engine):
    """Each append continues the log's indexes; entries and leaf hashes read back in order."""
    async with engine.connect() as conn:
        start = await audit.size(conn)  # initialisation wrote the first entry
    async with tx(engine) as conn:
        assert await audit.append(conn, [{"event": "a"}, {"event": "b"}], NOW) == start
        assert await audit.append(conn, [], NOW) == -1
    async with tx(engine) as conn:
        assert await audit.append(conn, [{"event": "c"}], NOW + 1) == start + 2
    async with engine.connect() as conn:
        assert await audit.size(conn) == start + 3
        leaves = await audit.leaves(conn, start, start + 10)
        assert [i for i, _, _ in leaves] == [start, start + 1, start + 2]
        assert [json.loads(e) for _, e, _ in leaves] == [
            {"event": "a", "time": NOW},
            {"event": "b", "time": NOW},
            {"event": "c", "time": NOW + 1},
        ]
        assert [h for _, _, h in leaves] == [leaf_hash(e) for _, e, _ in leaves]
        assert await audit.read_entries(conn, start + 1, start + 2) == [(start + 1, leaves[1][1])]
        assert await audit.leaf_hashes(conn, start, start + 3) == [h for _, _, h in leaves]
        assert await audit.leaf_hashes(conn, start + 3, start + 9) == []


async def test_entries_are_canonical_json(engine):
    """An entry is stored with sorted keys, no spaces and UTF-8 text."""
    async with tx(engine) as conn:
        index = await audit.append(conn, [{"z": 1, "a": "é"}], NOW)
    async with engine.connect() as conn:
        [(_, entry)] = await audit.read_entries(conn, index, index + 1)
    assert entry == '{"a":"é","time":1700000000,"z":1}'.encode()


async def test_one_checkpoint_per_size_and_the_newest_is_the_largest(engine):
    """Checkpoints read back by size; the newest is the largest size; a size is stored once."""
    async with engine.connect() as conn:
        assert await audit.newest_checkpoint_body(conn) is None
    async with tx(engine) as conn:
        await audit.insert_checkpoint(conn, 5, b"cp5", NOW)
        await audit.insert_checkpoint(conn, 2, b"cp2", NOW + 1)
    async with engine.connect() as conn:
        assert await audit.checkpoint_body(conn, 2) == b"cp2"
        assert await audit.checkpoint_body(conn, 3) is None
        assert await audit.newest_checkpoint_body(conn) == b"cp5"
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await audit.insert_checkpoint(conn, 5, b"other", NOW)


async def test_the_instance_row_is_written_once(engine):
    """The initialised instance reads back; a second instance row raises."""
    async with engine.connect() as conn:
        row = await instance.get(conn)
    assert row.instance_id.startswith("opseal-")
    assert len(row.token_key) == 32
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await instance.insert_instance(
                conn, "again", log_private_key=b"k", log_public_key=b"p", token_key=b"t", now=NOW
            )
