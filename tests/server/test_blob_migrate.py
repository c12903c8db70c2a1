"""`opseal-server blobs migrate`: moving attachment bytes between stores loses nothing, a re-run
finishes an interrupted one, and servers on the new store serve the same bytes (design §13)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
from sqlalchemy import select

from opseal.server.config import Settings
from opseal.server.storage.tables import blob_chunks

from .conftest import start_server
from .helpers import make_area
from .test_blobs import CHUNK, ciphertext, declare, upload


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


async def migrate(database_url: str, store_now: str, to: str) -> dict:
    """The CLI as an operator runs it, with the nodes stopped."""
    env = {**os.environ, "OPSEAL_DATABASE_URL": database_url, "OPSEAL_BLOB_STORE": store_now}
    argv = [sys.executable, "-m", "opseal.server.cli", "blobs", "migrate", "--to", to]
    run = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


async def download(database_url: str, store: str, blob_id: str, token: str) -> bytes:
    """The blob's bytes through a fresh server on ``store``, as a member's device gets them."""
    server = await start_server(Settings(database_url=database_url, blob_store=store))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{server.url}/api/v1/blobs/{blob_id}/data",
                headers={"Authorization": f"Bearer {token}"},
            ) as answer,  # fmt: skip
        ):
            assert answer.status == 200
            return await answer.read()
    finally:
        await server.runner.cleanup()


async def chunk_data(server) -> set:
    async with server.ctx.engine.connect() as conn:
        return {row.data is None for row in await conn.execute(select(blob_chunks))}


async def test_blobs_migrate_moves_the_bytes_out_of_the_database_and_back(
    operation, database_url, tmp_path
):
    await make_area(operation, "seizures", ["coordinator", "customs"])
    data, _ = ciphertext()
    blob_id = await declare(operation.actors["customs"].api, operation, data)
    await upload(operation.actors["customs"].api, blob_id, data)
    token = operation.actors["coordinator"].api.token
    folder = tmp_path / "moved"
    spec, chunks = f"file:{folder}", -(-len(data) // CHUNK)

    out = await migrate(database_url, "database", spec)
    assert (out["moved"], out["bytes"], out["to"]) == (chunks, len(data), spec)
    assert await chunk_data(operation.server) == {True}  # no byte left in the database
    assert b"".join(v for _, v in sorted((await asyncio.to_thread(files, folder)).items())) == data
    again = await migrate(database_url, "database", spec)  # a re-run finds it all moved
    assert (again["moved"], again["already_there"]) == (0, chunks)
    assert await download(database_url, spec, blob_id, token) == data

    back = await migrate(database_url, spec, "database")
    assert (back["moved"], back["bytes"]) == (chunks, len(data))
    assert await asyncio.to_thread(files, folder) == {}
    assert await chunk_data(operation.server) == {False}
    assert await download(database_url, "database", blob_id, token) == data


def test_blobs_migrate_refuses_a_store_it_does_not_know(tmp_path):
    env = {**os.environ, "OPSEAL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    argv = [sys.executable, "-m", "opseal.server.cli", "blobs", "migrate", "--to", "ftp://x"]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "'blob_store': expected 'database', 'file:/" in run.stderr
