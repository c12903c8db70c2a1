"""Blob bytes in a directory store (`blob_store = "file:/..."`): the database keeps only the
chunk rows, the folder only ciphertext, and nothing is left behind by refusals, resets or the
purge (design §13)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from opseal.client.errors import BadRequestError, ConflictError
from opseal.crypto.attachments import decrypt_file
from opseal.server.config import ConfigError, Settings
from opseal.server.services import retention
from opseal.server.storage.tables import blob_chunks

from .helpers import make_area
from .test_blobs import CHUNK, ciphertext, upload

DAY = 86400


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(database_url=database_url, rate_limit_per_minute=100_000,
                    blob_store=f"file:{tmp_path / 'blobs'}")  # fmt: skip


def stored_files(settings: Settings) -> dict[str, bytes]:
    root = Path(settings.blob_store.removeprefix("file:"))
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def chunk_rows(server) -> list:
    async with server.ctx.engine.connect() as conn:
        return list(await conn.execute(select(blob_chunks).order_by(blob_chunks.c.offset)))


async def test_directory_store_keeps_the_bytes_and_leaves_nothing_behind(operation, settings):
    """Upload with a refused chunk, download whole and by range, a reset, and the purge."""
    await make_area(operation, "seizures", ["coordinator", "customs"])
    api = operation.actors["customs"].api
    data, meta = ciphertext()  # three full chunks and a short last one
    blob_id = (await api.create_blob(operation.id, "seizures", len(data),
                                     meta.ciphertext_sha256)).blob_id  # fmt: skip
    await api.put_blob_chunk(blob_id, 0, data[:CHUNK])
    with pytest.raises(ConflictError):  # other bytes over a stored chunk: its object is dropped
        await api.put_blob_chunk(blob_id, 0, bytes(CHUNK))
    with pytest.raises(BadRequestError, match="at least"):  # written, then refused in the tx
        await api.put_blob_chunk(blob_id, CHUNK, data[CHUNK : CHUNK + 10])
    files = await asyncio.to_thread(stored_files, settings)
    assert list(files.values()) == [data[:CHUNK]]  # the refused chunks left no object
    await upload(api, blob_id, data, start=CHUNK)

    # The database holds rows without bytes; the folder holds exactly the ciphertext chunks.
    rows = await chunk_rows(operation.server)
    assert [(r.offset, r.length, r.data) for r in rows] == [
        (o, min(CHUNK, len(data) - o), None) for o in range(0, len(data), CHUNK)
    ]
    files = await asyncio.to_thread(stored_files, settings)
    assert sorted(files) == sorted(r.object_key for r in rows)
    assert b"".join(files[r.object_key] for r in rows) == data
    root = Path(settings.blob_store.removeprefix("file:"))
    assert stat.S_IMODE((root / blob_id).stat().st_mode) == 0o700
    assert {stat.S_IMODE((root / k).stat().st_mode) for k in files} == {0o600}

    reader = operation.actors["coordinator"].api
    whole = await reader.download_blob(blob_id)
    assert whole == data
    await asyncio.to_thread(decrypt_file, io.BytesIO(whole), io.BytesIO(), meta)
    span = (CHUNK - 100, 2 * CHUNK + 50)  # crosses two chunk boundaries
    assert await reader.download_blob(blob_id, *span) == data[span[0] : span[1]]

    # A blob whose bytes miss their declared hash is reset, and its objects go with it.
    other = bytes(2 * CHUNK)
    wrong = (await api.create_blob(operation.id, "seizures", len(other),
                                   hashlib.sha256(b"not these").digest())).blob_id  # fmt: skip
    with pytest.raises(BadRequestError, match="reset"):
        await upload(api, wrong, other)
    files = await asyncio.to_thread(stored_files, settings)
    assert not any(k.startswith(wrong) for k in files)
    assert len(files) == len(rows)

    # The purge of the archived operation deletes every object of its blobs.
    ctx = operation.server.ctx
    await operation.actors["coordinator"].api.set_phase(operation.id, "archived")
    ctx.clock = lambda: operation.world.now + 400 * DAY
    await retention.purge(ctx, operation.id)
    assert await asyncio.to_thread(stored_files, settings) == {}
    assert await chunk_rows(operation.server) == []


@pytest.mark.parametrize("value", ["file:relative/blobs", "s4://bucket", ""])
def test_blob_store_setting_names_what_it_expects(value):
    with pytest.raises(ConfigError, match="'blob_store': expected 'database' or 'file:/"):
        Settings(blob_store=value)
