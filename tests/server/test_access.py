"""The access matrix: every endpoint against every kind of caller.

Callers: coordinator, customs member, partner, stakeholder, observer, an organisation outside
the operation, a revoked device and no token. The customs-only area is 'seizures'; the
stakeholder never receives one byte of it — not through events, commits, key packages,
sync or the stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from opseal.client.api import ApiClient
from opseal.client.errors import (
    ApiError,
    ForbiddenError,
    NotMemberError,
    UnauthorizedError,
)
from opseal.crypto.certs import Revocation
from opseal.crypto.encoding import b64d
from opseal.wire.stream import StreamEvent, StreamIdle

from .conftest import Actor, enrol
from .helpers import envelope, make_area

ROLES = [
    "coordinator",
    "customs",
    "partner",
    "stakeholder",
    "observer",
    "outsider",
    "revoked",
    "none",
]
OK = "ok"


@pytest.fixture
async def matrix(operation):
    """'seizures' with coordinator, customs, partner and a soon-revoked device; 'stakeholders'
    with the stakeholder, the observer and a customs officer; then the revocation."""
    op = operation
    op.actors["revoked"] = await enrol(
        op.server, op.world, "fr-customs", "customs-user", "revoked-device"
    )
    seizures = await make_area(op, "seizures", ["customs", "partner", "revoked"])
    await make_area(op, "stakeholders", ["stakeholder", "observer", "customs"])
    sent = envelope(op, "customs", *seizures, 1, "customs-only secret")
    await op.actors["customs"].api.post_message(op.id, "seizures", sent.to_bytes())
    op.message_id = str(sent.header.message_id)
    blob = b"customs-only ciphertext" * 10
    created = await op.actors["customs"].api.create_blob(
        op.id, "seizures", len(blob), hashlib.sha256(blob).digest()
    )
    await op.actors["customs"].api.put_blob_chunk(created.blob_id, 0, blob)
    op.blob_id = created.blob_id
    revoked = op.actors["revoked"].identity
    statement = Revocation.issue(
        op.world.roots["fr-customs"],
        organisation_id="fr-customs",
        subject_id="revoked-device",
        revoked_key=revoked.signing_key.verify_key,
        reason="stolen",
        revoked_at=int(time.time()),
    )
    await op.actors["customs"].api.revoke("fr-customs", statement.to_bytes())
    op.actors["none"] = Actor(revoked, ApiClient(op.server.url))
    await op.actors["none"].api.__aenter__()
    op.server.clients.append(op.actors["none"].api)
    return op, seizures


async def outcome(call) -> str:
    try:
        await call
    except UnauthorizedError:
        return "401"
    except NotMemberError:
        return "not_member"
    except ForbiddenError:
        return "403"
    except ApiError as error:
        return error.code
    return OK


def row(**expected: str) -> dict[str, str]:
    """Expected outcome per caller; unnamed authenticated callers default to 'not_member'."""
    base = {"revoked": "401", "none": "401", "outsider": "not_member"}
    return {**base, **expected}


READ_SEIZURES = row(coordinator=OK, customs=OK, partner=OK, stakeholder="403", observer="403")
MATRIX = {
    "events": (lambda a, op, s: a.events(op.id, "seizures"), READ_SEIZURES),
    "commits": (lambda a, op, s: a.commits(op.id, "seizures"), READ_SEIZURES),
    "key-packages": (lambda a, op, s: a.key_packages(op.id, "seizures"), READ_SEIZURES),
    "operation": (
        lambda a, op, s: a.operation(op.id),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK),
    ),
    "charter": (
        lambda a, op, s: a.charter_versions(op.id),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK),
    ),
    "phase": (
        lambda a, op, s: a.set_phase(op.id, "active"),
        row(coordinator=OK, customs="403", partner="403", stakeholder="403", observer="403"),
    ),
    "whoami": (
        lambda a, op, s: a.whoami(),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK, outsider=OK),
    ),
    "sync": (
        lambda a, op, s: a.sync(),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK, outsider=OK),
    ),
    "blob": (lambda a, op, s: a.blob(op.blob_id), READ_SEIZURES),
    "blob-data": (lambda a, op, s: a.download_blob(op.blob_id), READ_SEIZURES),
    "receipts-status": (
        lambda a, op, s: a.receipts(op.id, "seizures", "customs-device", op.message_id),
        row(coordinator=OK, customs="403", partner="403", stakeholder="403", observer="403"),
    ),
    "post-key-package": (
        lambda a, op, s: a.post_key_package(op.id, "seizures", b"x"),
        row(
            coordinator="bad_request",
            customs="bad_request",
            partner="bad_request",
            stakeholder="bad_request",
            observer="bad_request",
            outsider="bad_request",
        ),
    ),
    "audit-checkpoint": (
        lambda a, op, s: a.audit_checkpoint(),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK, outsider=OK),
    ),
    "device": (
        lambda a, op, s: a.device("customs-device"),
        row(coordinator=OK, customs=OK, partner=OK, stakeholder=OK, observer=OK, outsider=OK),
    ),
    "org-users": (
        lambda a, op, s: a.register_user("fr-customs", b"x"),
        row(
            coordinator="403",
            customs="bad_request",
            partner="403",
            stakeholder="403",
            observer="403",
            outsider="403",
        ),
    ),
}


def _post_message_row() -> dict[str, str]:
    return row(coordinator=OK, customs=OK, partner=OK, stakeholder="403", observer="403")


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
async def test_access_matrix(matrix, endpoint):
    """Each caller gets exactly the outcome the charter and its standing allow."""
    op, seizures = matrix
    call, expected = MATRIX[endpoint]
    got = {role: await outcome(call(op.actors[role].api, op, seizures)) for role in ROLES}
    assert got == {role: expected[role] for role in ROLES}


async def test_posting_into_the_customs_area(matrix):
    """Members with post rights post; everyone else is refused and nothing is stored."""
    op, (state, secret) = matrix
    got = {}
    for counter, role in enumerate(ROLES, start=10):
        sealed = envelope(
            op,
            role if role in ("coordinator", "customs", "partner") else "customs",
            state,
            secret,
            counter,
        )
        if role not in ("coordinator", "customs", "partner"):
            # Others seal as themselves: their device id, their key, the same area and epoch.
            sealed = envelope(op, role if role != "none" else "revoked", state, secret, counter)
        got[role] = await outcome(
            op.actors[role].api.post_message(op.id, "seizures", sealed.to_bytes())
        )
    assert got == _post_message_row() | {"customs": OK}
    events = await op.actors["customs"].api.events(op.id, "seizures")
    senders = [e.device_id for e in events if e.kind == "message"]
    assert sorted(senders) == sorted(
        ["customs-device", "coordinator-device", "customs-device", "partner-device"]
    )


async def test_stakeholder_never_receives_a_byte_of_the_customs_area(matrix):
    """Sync and the stream give the stakeholder only stakeholder-area entries."""
    op, _ = matrix
    stakeholder = op.actors["stakeholder"].api
    page = await stakeholder.sync()
    assert page.events
    assert {e.area for e in page.events} == {"stakeholders"}
    assert all(b"customs-only secret" not in b64d(e.body) for e in page.events)
    seen = []

    async def follow():
        async for message in stakeholder.stream(""):
            if isinstance(message, StreamEvent):
                seen.append(message.event.area)
            elif isinstance(message, StreamIdle):
                return

    await asyncio.wait_for(follow(), 10)
    assert seen
    assert set(seen) == {"stakeholders"}


async def test_revoked_device_cannot_log_in_again(matrix):
    """A revoked device's fresh login is refused."""
    op, _ = matrix
    revoked = op.actors["revoked"]
    with pytest.raises(UnauthorizedError, match="revoked"):
        await revoked.api.login(op.instance_id, revoked.device_id, revoked.identity.signing_key)
