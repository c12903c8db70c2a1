"""The audit log: entries for every action, signed checkpoints, proofs and client verification."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from sqlalchemy import delete, update

from opseal.client.audit import AuditError, encode_entry, verify_audit, verify_entry
from opseal.client.errors import BadRequestError, NotFoundError, NotMemberError, UnauthorizedError
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.group import create_area
from opseal.crypto.keys import SigningKey
from opseal.crypto.merkle import Checkpoint, leaf_hash, verify_consistency, verify_inclusion
from opseal.server.config import Settings
from opseal.server.services import audit as audit_service
from opseal.server.services import instance as admin
from opseal.server.storage.tables import audit_checkpoints, audit_head, audit_leaves
from opseal.wire.audit import AuditEntry

from ..crypto.conftest import World
from .conftest import enrol


@pytest.fixture
def settings(database_url) -> Settings:
    """French customs and the audit office hold the instance auditor role here, so the
    whole log is theirs to read (need-to-know reading is tested in test_audit_scope.py)."""
    return Settings(
        database_url=database_url,
        rate_limit_per_minute=100_000,
        auditor_orgs="fr-customs,auditor-org",
    )


async def all_entries(api) -> list[AuditEntry]:
    """Every entry of the log, read page by page."""
    entries: list[AuditEntry] = []
    while page := await api.audit_entries(len(entries), len(entries) + 1000):
        entries.extend(page)
    return entries


def matching(entries: list[dict], **fields) -> list[dict]:
    """The entries holding every one of ``fields``."""
    return [entry for entry in entries if fields.items() <= entry.items()]


def log_key(server) -> bytes:
    return server.ctx.instance.log_key.verify_key.raw


async def test_actions_are_logged_without_secrets(operation):
    """Enrolment, login, operation creation, a refusal and a commit are entries; no secret is."""
    server, coordinator = operation.server, operation.actors["coordinator"]
    code = await admin.create_enrolment_code(server.ctx, "fr-customs")
    identity = operation.world.device("fr-customs", "clerk", "clerk-device")
    clerk = await server.client()
    await clerk.enrol(code, identity.user_cert.to_bytes(), identity.device_cert.to_bytes())
    token = await clerk.login(operation.instance_id, "clerk-device", identity.signing_key)
    with pytest.raises(NotMemberError):
        await operation.actors["outsider"].api.operation(operation.id)
    commit, _, _ = create_area(
        operation.world.charter, coordinator.identity, instance_id=operation.instance_id,
        area="plan", now=int(time.time()),
    )  # fmt: skip
    await coordinator.api.post_commit(operation.id, "plan", commit.to_bytes())

    entries = [item.entry for item in await all_entries(clerk)]
    assert matching(entries, event="enrolled", org="fr-customs", device="clerk-device")
    assert matching(entries, event="login", device="clerk-device")
    assert matching(entries, event="refused", code="not_member", device="outsider-device")
    assert matching(entries, event="commit", area="plan", epoch=0, hash=b64e(commit.hash))
    events = {entry["event"] for entry in entries}
    assert {"instance-initialised", "enrolment-code-created", "operation-created"} <= events
    text = json.dumps(entries)
    secrets = [code, token, *(actor.api.token for actor in operation.actors.values())]
    certificates = [identity.device_cert.to_bytes(), identity.user_cert.to_bytes()]
    for secret in [*secrets, *(f(c) for c in certificates for f in (b64e, bytes.hex))]:
        assert secret not in text


async def test_checkpoints_and_proofs_verify(operation):
    """Checkpoints verify with the log key, and every inclusion and consistency proof holds."""
    api, key = operation.actors["customs"].api, operation.server.ctx.instance.log_key.verify_key
    first = await api.audit_checkpoint()
    old = Checkpoint.from_bytes(b64d(first.checkpoint))
    old.verify(key.verify)
    assert (first.size, b64d(first.root), first.log_key) == (
        old.size, old.root, (await api.instance()).log_key,
    )  # fmt: skip
    with pytest.raises(NotMemberError):  # one more entry: a refusal
        await operation.actors["outsider"].api.operation(operation.id)
    new = Checkpoint.from_bytes(b64d((await api.audit_checkpoint()).checkpoint))
    new.verify(key.verify)
    assert new.size == old.size + 1
    assert await api.audit_checkpoint(old.size) == first

    entries = await all_entries(api)
    assert len(entries) == new.size
    for index, item in enumerate(entries):
        proof = await api.audit_inclusion_proof(index, new.size)
        verify_inclusion(leaf_hash(encode_entry(item.entry)), index, new.size, proof, new.root)
    proof = await api.audit_consistency_proof(old.size, new.size)
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    report = await verify_audit(api, key.raw, old)
    assert (report.size, report.root, report.entries_checked) == (new.size, new.root, new.size)
    assert (await verify_entry(api, new, new.size - 1))["code"] == "not_member"


async def test_concurrent_checkpoint_requests_store_one(server):
    """Requests racing to sign the same size all answer the one checkpoint that was stored."""
    ticks = itertools.count(int(time.time()))
    server.ctx.clock = lambda: next(ticks)  # every signer gets another timestamp
    answers = await asyncio.gather(*(audit_service.latest_checkpoint(server.ctx) for _ in range(4)))
    stored = await audit_service.checkpoint_at(server.ctx, answers[0].size)
    assert answers == [stored] * 4


async def test_altered_entry_is_detected(operation):
    """An entry changed in the database fails verification, with or without its leaf hash."""
    server, api = operation.server, operation.actors["observer"].api
    last = (await verify_audit(api, log_key(server), None)).checkpoint
    forged = encode_entry({"event": "login", "device": "nobody", "time": 0})
    async with server.ctx.engine.begin() as conn:
        await conn.execute(update(audit_leaves).where(audit_leaves.c.idx == 2).values(entry=forged))
    with pytest.raises(AuditError, match="entry 2: its content does not match its leaf hash"):
        await verify_audit(api, log_key(server), last)
    async with server.ctx.engine.begin() as conn:
        await conn.execute(
            update(audit_leaves).where(audit_leaves.c.idx == 2).values(leaf_hash=leaf_hash(forged))
        )
    with pytest.raises(AuditError, match="does not match the signed checkpoint"):
        await verify_audit(api, log_key(server), last)
    with pytest.raises(AuditError, match="not signed by the pinned log key"):
        await verify_audit(api, SigningKey.generate().verify_key.raw, None)


async def test_rewritten_history_is_detected(operation):
    """A truncated, then rewritten, log fails the consistency check against the last checkpoint."""
    server, api = operation.server, operation.actors["observer"].api
    last = (await verify_audit(api, log_key(server), None)).checkpoint
    async with server.ctx.engine.begin() as conn:
        await conn.execute(delete(audit_leaves).where(audit_leaves.c.idx >= last.size - 3))
        await conn.execute(delete(audit_checkpoints))
        await conn.execute(update(audit_head).values(size=last.size - 3))
    with pytest.raises(
        AuditError, match=r"fewer than the \d+ remembered: its history was truncated"
    ):
        await verify_audit(api, log_key(server), last)
    for _ in range(5):
        await admin.create_enrolment_code(server.ctx, "wco")
    report = await verify_audit(api, log_key(server), None)  # consistent in itself
    assert report.size == last.size + 2
    with pytest.raises(AuditError, match="does not extend the remembered checkpoint"):
        await verify_audit(api, log_key(server), last)


BAD_QUERIES = [
    ("/entries", {"start": "-1"}, "start"),
    ("/entries", {"start": "x"}, "start"),
    ("/entries", {"start": "0", "end": "1001"}, "end"),
    ("/entries", {"start": "5", "end": "4"}, "end"),
    ("/proof/inclusion", {"size": "1"}, "index"),
    ("/proof/inclusion", {"index": "0", "size": "0"}, "size"),
    ("/proof/inclusion", {"index": "1", "size": "1"}, "index"),
    ("/proof/inclusion", {"index": "0", "size": "1000000"}, "size"),
    ("/proof/consistency", {"old": "3", "new": "2"}, "old"),
    ("/proof/consistency", {"old": "0", "new": "1000000"}, "new"),
    ("/proof/consistency", {"old": "a", "new": "1"}, "old"),
    ("/checkpoints/abc", {}, "size"),
    ("/checkpoints/-1", {}, "size"),
]


async def test_bad_parameters_are_refused(server):
    """Malformed or out-of-range parameters answer 400 naming the field; unknown sizes 404."""
    actor = await enrol(server, World(now=int(time.time())), "wco", "auditor", "auditor-device")
    for path, params, field in BAD_QUERIES:
        with pytest.raises(BadRequestError) as refused:
            await actor.api.request("GET", "/api/v1/audit" + path, params=params)
        assert refused.value.details["field"] == field, (path, params)
    with pytest.raises(NotFoundError):
        await actor.api.audit_checkpoint(999_999)


async def test_unauthenticated_requests_are_refused(server):
    """Every audit endpoint answers 401 without a bearer token."""
    api = await server.client()
    for call in (
        api.audit_checkpoint(),
        api.audit_checkpoint(1),
        api.audit_entries(0, 10),
        api.audit_inclusion_proof(0, 1),
        api.audit_consistency_proof(0, 1),
    ):
        with pytest.raises(UnauthorizedError):
            await call
