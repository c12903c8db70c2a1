"""A malicious server for the client's adversarial tests (design §11, issue 4).

The honest server runs unchanged; the attacker controls everything it stores and answers, and
lies in one of two ways:

- :class:`TamperedDatabase` rewrites rows of the real server's database between the honest
  server storing them and a victim syncing: it injects, copies, moves or deletes area entries
  (keeping ``areas.next_seq`` consistent), stores forged key packages and commits, rolls an
  area back, alters blobs and rewrites the audit log;
- :class:`RewritingProxy` sits on loopback between a victim client and the real server and
  rewrites the JSON the server answers (sync pages, key packages); :meth:`Attacker.victim`
  reopens a member's client through it.

The attacker holds no member's private key: where a test needs a colluding or compromised
device, it passes that device's identity in explicitly.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opseal.client.api import ApiClient
from opseal.client.client import Client
from opseal.crypto.certs import Certificate
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.envelope import Envelope, Header, seal
from opseal.crypto.group import Commit, DeviceIdentity, GroupState, KeyPackage
from opseal.crypto.keys import HpkePrivateKey, SigningKey
from opseal.crypto.merkle import leaf_hash
from opseal.server.storage.audit import encode_entry
from opseal.server.storage.db import write_transaction
from opseal.server.storage.tables import (
    area_members,
    areas,
    audit_checkpoints,
    audit_head,
    audit_leaves,
    blob_chunks,
    charter_versions,
    commit_secrets,
    commits,
    devices,
    events,
    key_packages,
    operations,
    revocations,
    users,
)

from .conftest import PASSPHRASE

__all__ = [
    "Attacker",
    "RewritingProxy",
    "TamperedDatabase",
    "attacker",
    "forge_device",
    "forge_envelope",
    "substitute_hpke_key",
]

YEAR = 365 * 86400


# -- forgeries -----------------------------------------------------------------------------
def forge_device(user_cert: Certificate, device_id: str) -> DeviceIdentity:
    """A device for an existing user whose certificate names the user's key as issuer but is
    signed by a key the attacker made: what a server would need to slip in a ghost device."""
    now = int(time.time())
    signing, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    draft = Certificate(
        "device", user_cert.organisation_id, user_cert.user_id, device_id, user_cert.user_kind,
        device_id, signing.verify_key, hpke.public_key, user_cert.signing_key.key_id,
        now - 60, now + YEAR,
    )  # fmt: skip
    cert = replace(draft, signature=SigningKey.generate().sign(draft.to_be_signed()))
    return DeviceIdentity(user_cert, cert, signing, hpke)


def substitute_hpke_key(package: KeyPackage) -> KeyPackage:
    """``package`` with its device's HPKE key swapped for the attacker's, signatures kept."""
    cert = replace(package.device_cert, hpke_key=HpkePrivateKey.generate().public_key)
    return replace(package, device_cert=cert)


def forge_envelope(
    identity: DeviceIdentity,
    secret: bytes,
    *,
    instance_id: str,
    operation_id: str,
    area: str,
    epoch: int,
    counter: int,
    payload: Any,
) -> bytes:
    """An envelope sealed and signed by ``identity`` (a colluding or removed device) that the
    honest server would not accept, for the attacker to store directly."""
    header = Header(
        instance_id, operation_id, area, epoch, identity.device_id, counter, uuid.uuid4(),
        "text", client_time_ms=int(time.time() * 1000),
    )  # fmt: skip
    plaintext = json.dumps(payload).encode()
    return seal(header, plaintext, secret, identity.signing_key).to_bytes()


# -- the database --------------------------------------------------------------------------
@dataclass
class TamperedDatabase:
    """Direct writes to the real server's database, as a compromised server would make them."""

    engine: AsyncEngine

    async def entries(self, op: str, area: str, kind: str | None = None) -> list[Row[Any]]:
        """The area's stored entries in sequence order (of one ``kind`` if given)."""
        query = select(events).where(events.c.operation_id == op, events.c.area == area)
        if kind is not None:
            query = query.where(events.c.kind == kind)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query.order_by(events.c.seq)))

    async def messages(self, op: str, area: str) -> list[tuple[int, Envelope]]:
        """The area's messages as ``(seq, envelope)``."""
        rows = await self.entries(op, area, "message")
        return [(row.seq, Envelope.from_bytes(row.body)) for row in rows]

    async def append(
        self, op: str, area: str, kind: str, device_id: str, body: bytes, epoch: int | None = None
    ) -> int:
        """Store an entry at the area's next sequence number and return it."""
        async with write_transaction(self.engine) as conn:
            return await self._append(conn, op, area, kind, device_id, body, epoch)

    async def _append(
        self,
        conn: AsyncConnection,
        op: str,
        area: str,
        kind: str,
        device_id: str,
        body: bytes,
        epoch: int | None,
    ) -> int:
        where = (areas.c.operation_id == op, areas.c.area == area)
        seq = (await conn.execute(select(areas.c.next_seq).where(*where))).scalar_one() + 1
        await conn.execute(
            insert(events).values(
                operation_id=op, area=area, seq=seq, kind=kind, device_id=device_id,
                epoch=epoch, message_id=None, body=body, created_at=int(time.time()),
            )
        )  # fmt: skip
        await conn.execute(update(areas).where(*where).values(next_seq=seq))
        return seq

    async def copy(self, op: str, area: str, seq: int, *, to_area: str | None = None) -> int:
        """Serve entry ``seq`` again at the next sequence number of ``to_area`` (default: the
        same area); returns the new sequence number."""
        [row] = [r for r in await self.entries(op, area) if r.seq == seq]
        return await self.append(op, to_area or area, row.kind, row.device_id, row.body, row.epoch)

    async def delete(self, op: str, area: str, seqs: Iterable[int]) -> None:
        """Withhold entries: their sequence numbers are never served."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                delete(events).where(
                    events.c.operation_id == op, events.c.area == area, events.c.seq.in_(seqs)
                )
            )

    async def add_key_package(self, package: KeyPackage) -> int:
        """Store a key package the honest server would have refused, as a pending join."""
        op, area, body = package.operation_id, package.area, package.to_bytes()
        async with write_transaction(self.engine) as conn:
            seq = await self._append(conn, op, area, "key-package", package.device_id, body, None)
            await conn.execute(
                insert(key_packages).values(
                    operation_id=op, area=area, device_id=package.device_id, body=body, seq=seq,
                    created_at=int(time.time()),
                )
            )  # fmt: skip
        return seq

    async def add_commit(self, commit: Commit, state: GroupState) -> int:
        """Store a commit the honest server would have refused, and move the area to ``state``
        (the server's roster included) as if it had been accepted."""
        op, area = commit.operation_id, commit.area
        key = {"operation_id": op, "area": area}
        async with write_transaction(self.engine) as conn:
            seq = await self._append(
                conn, op, area, "commit", commit.committer, commit.to_bytes(), commit.epoch
            )
            await conn.execute(
                insert(commits).values(**key, epoch=commit.epoch, seq=seq, hash=commit.hash)
            )
            await self._set_state(conn, state)
        return seq

    async def forget_revocations(self) -> None:
        """Delete every revocation and clear every revocation mark, as if none had happened."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(delete(revocations))
            await conn.execute(update(devices).values(revoked_at=None))
            await conn.execute(update(users).values(revoked_at=None))

    async def add_charter_version(self, charter: Charter) -> None:
        """Store a charter version the honest server would have refused, as the current one."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                insert(charter_versions).values(
                    operation_id=charter.operation_id, version=charter.version,
                    hash=charter.hash, body=charter.to_bytes(), created_at=int(time.time()),
                )
            )  # fmt: skip
            await conn.execute(
                update(operations)
                .where(operations.c.operation_id == charter.operation_id)
                .values(charter_version=charter.version)
            )

    async def roll_back(self, state: GroupState) -> None:
        """Reset an area to an earlier epoch ``state``, forgetting the commits after it."""
        async with write_transaction(self.engine) as conn:
            for table in (commit_secrets, commits):
                await conn.execute(
                    delete(table).where(
                        table.c.operation_id == state.operation_id,
                        table.c.area == state.area,
                        table.c.epoch > state.epoch,
                    )
                )
            await self._set_state(conn, state)

    async def _set_state(self, conn: AsyncConnection, state: GroupState) -> None:
        key = {"operation_id": state.operation_id, "area": state.area}
        where = (areas.c.operation_id == state.operation_id, areas.c.area == state.area)
        await conn.execute(
            update(areas).where(*where).values(epoch=state.epoch, state=state.to_bytes())
        )
        await conn.execute(
            delete(area_members).where(
                area_members.c.operation_id == state.operation_id,
                area_members.c.area == state.area,
            )
        )
        await conn.execute(
            insert(area_members), [{**key, "device_id": e.device_id} for e in state.roster]
        )

    async def blob(self, blob_id: str) -> bytes:
        """A blob's stored bytes (a single chunk in these tests)."""
        async with self.engine.connect() as conn:
            query = select(blob_chunks.c.data).where(blob_chunks.c.blob_id == blob_id)
            return (await conn.execute(query)).scalar_one()

    async def overwrite_blob(self, blob_id: str, data: bytes) -> None:
        """Serve ``data`` as the blob's content from now on (same length as before)."""
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(blob_chunks).where(blob_chunks.c.blob_id == blob_id).values(data=data)
            )

    async def rewrite_audit(self, keep: int, entries: Iterable[dict[str, Any]]) -> int:
        """Replace every audit entry from index ``keep`` on with ``entries`` (leaf hashes
        recomputed to match, checkpoints over the old history dropped so the server signs the
        new one); returns the log's new size."""
        now = int(time.time())
        rows = []
        for offset, entry in enumerate(entries):
            data = encode_entry({**entry, "time": now})
            rows.append(
                {
                    "idx": keep + offset,
                    "entry": data,
                    "leaf_hash": leaf_hash(data),
                    "created_at": now,
                }
            )
        async with write_transaction(self.engine) as conn:
            await conn.execute(delete(audit_leaves).where(audit_leaves.c.idx >= keep))
            await conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.size > keep))
            await conn.execute(insert(audit_leaves), rows)
            size = keep + len(rows)
            await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(size=size))
        return size


# -- the proxy -----------------------------------------------------------------------------
Rewrite = Callable[[Any], Any]


@dataclass
class RewritingProxy:
    """An HTTP reverse proxy on loopback that rewrites the real server's JSON answers.

    Requests and non-JSON answers pass through unchanged; a JSON answer to a path matching a
    registered pattern goes through that pattern's rewrite function first.
    """

    upstream: str
    url: str = ""
    rewrites: list[tuple[re.Pattern[str], Rewrite]] = field(default_factory=list)
    byte_rewrites: list[tuple[re.Pattern[str], Callable[[bytes], bytes]]] = field(
        default_factory=list
    )
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def rewrite(self, path: str, fn: Rewrite) -> None:
        """Rewrite JSON answers to paths matching the regular expression ``path``."""
        self.rewrites.append((re.compile(path), fn))

    def rewrite_bytes(self, path: str, fn: Callable[[bytes], bytes]) -> None:
        """Rewrite the raw bytes of answers to paths matching ``path`` (a web app's files)."""
        self.byte_rewrites.append((re.compile(path), fn))

    def on_sync(self, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Rewrite every entry of every sync page with ``fn``."""
        self.rewrite(
            r"/api/v1/sync", lambda page: {**page, "events": list(map(fn, page["events"]))}
        )

    def on_key_packages(self, fn: Callable[[KeyPackage], KeyPackage]) -> None:
        """Rewrite the key packages an admitting client fetches, and those in sync pages."""

        def package(raw: str) -> str:
            return b64e(fn(KeyPackage.from_bytes(b64d(raw))).to_bytes())

        def listing(body: dict[str, Any]) -> dict[str, Any]:
            return {**body, "key_packages": [package(p) for p in body["key_packages"]]}

        def entry(e: dict[str, Any]) -> dict[str, Any]:
            return {**e, "body": package(e["body"])} if e["kind"] == "key-package" else e

        self.rewrite(r"/api/v1/operations/[^/]+/areas/[^/]+/key-packages", listing)
        self.on_sync(entry)

    def on_commits(self, fn: Callable[[Commit], Commit]) -> None:
        """Rewrite every commit served in sync pages."""

        def entry(e: dict[str, Any]) -> dict[str, Any]:
            if e["kind"] != "commit":
                return e
            return {**e, "body": b64e(fn(Commit.from_bytes(b64d(e["body"]))).to_bytes())}

        self.on_sync(entry)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        passed = ("Authorization", "Content-Type", "Range")
        headers = {h: request.headers[h] for h in passed if h in request.headers}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read() or None,
            headers=headers,
        ) as answer:
            body, status = await answer.read(), answer.status
            kept = {
                h: answer.headers[h]
                for h in ("Content-Type", "Content-Range")
                if h in answer.headers
            }
        if status < 400 and kept.get("Content-Type", "").startswith("application/json"):
            for pattern, fn in self.rewrites:
                if pattern.fullmatch(request.path):
                    body = json.dumps(fn(json.loads(body))).encode()
        for pattern, raw in self.byte_rewrites:
            if status < 400 and pattern.fullmatch(request.path):
                body = raw(body)
        return web.Response(body=body, status=status, headers=kept)


# -- the fixture ---------------------------------------------------------------------------
@dataclass
class Attacker:
    """The malicious server: its database, a rewriting proxy, and the onboarded operation."""

    db: TamperedDatabase
    proxy: RewritingProxy
    onboarded: Any

    @property
    def op(self) -> str:
        return self.onboarded.operation_id

    async def victim(self, org: str) -> Client:
        """Reopen ``org``'s client so that it talks to the server only through the proxy."""
        honest = self.onboarded.clients[org]
        await honest.close()
        client = await Client.open(honest.profile, PASSPHRASE, login=False)
        await client.api.close()
        client.info.server = self.proxy.url
        client.api = await ApiClient(self.proxy.url).__aenter__()
        await client.login()
        self.onboarded.clients[org] = client  # closed by the onboarded fixture
        return client


@pytest.fixture
async def attacker(server, onboarded) -> AsyncIterator[Attacker]:
    """A malicious server in front of (and inside) the onboarded operation's real server."""
    proxy = RewritingProxy(server.url)
    await proxy.start()
    yield Attacker(TamperedDatabase(server.ctx.engine), proxy, onboarded)
    await proxy.close()
