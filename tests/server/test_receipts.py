"""Read and acknowledgement receipts, and the coordinator's view of them (design §7)."""

from __future__ import annotations

import time
import uuid

import pytest

from opseal.client.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidSignatureError,
    NotFoundError,
    NotMemberError,
)
from opseal.crypto.encoding import b64d
from opseal.crypto.keys import SigningKey
from opseal.crypto.statements import Receipt

from .helpers import envelope, make_area, post_text, receipt

COORDINATOR = "coordinator-device"


@pytest.fixture
async def plan(operation):
    """The customs-only 'plan' area, where the coordinator posts a plan that asks for an ack."""
    state, secret = await make_area(operation, "plan", ["coordinator", "customs", "customs2"])
    message_id = await post_text(
        operation, "coordinator", "plan", state, secret, 1, requires_ack=True
    )
    return operation, message_id


async def test_coordinator_sees_who_has_not_acknowledged(plan):
    """Receipts are stored once each; the coordinator sees per organisation who is behind."""
    operation, message_id = plan
    customs, customs2 = operation.actors["customs"].api, operation.actors["customs2"].api
    first = await customs.post_receipt(
        receipt(operation, "customs", "plan", message_id, "read", of="coordinator")
    )
    assert (first.created, first.kind, first.org_id) == (True, "read", "fr-customs")
    await customs.post_receipt(
        receipt(operation, "customs", "plan", message_id, "ack", of="coordinator")
    )
    await customs2.post_receipt(
        receipt(operation, "customs2", "plan", message_id, "read", of="coordinator")
    )
    repeat = await customs.post_receipt(
        receipt(operation, "customs", "plan", message_id, "read", of="coordinator")
    )
    assert (repeat.created, repeat.receipt) == (False, first.receipt)

    status = await operation.actors["coordinator"].api.receipts(
        operation.id, "plan", COORDINATOR, message_id
    )
    assert status.requires_ack is True
    orgs = {o.org_id: o for o in status.organisations}
    assert set(orgs) == {"wco", "fr-customs", "de-customs"}  # the roles that read 'plan'
    assert (orgs["fr-customs"].read, orgs["fr-customs"].acked) == (
        ["customs-device"],
        ["customs-device"],
    )
    assert (orgs["de-customs"].read, orgs["de-customs"].acked) == (["customs2-device"], [])
    assert orgs["de-customs"].members == ["customs2-device"]
    assert status.pending_ack_orgs == ["de-customs"]

    events = await customs.events(operation.id, "plan")
    assert [e.kind for e in events].count("receipt") == 3


async def test_only_a_coordinator_sees_receipt_status(plan):
    """A customs device is refused the status, and an outsider is not even a member."""
    operation, message_id = plan
    with pytest.raises(ForbiddenError, match="only a coordinator"):
        await operation.actors["customs"].api.receipts(
            operation.id, "plan", COORDINATOR, message_id
        )
    with pytest.raises(NotMemberError):
        await operation.actors["outsider"].api.receipts(
            operation.id, "plan", COORDINATOR, message_id
        )


async def test_forged_or_foreign_receipts_are_refused(plan):
    """A receipt signed by another key, or naming another device, is refused and not stored."""
    operation, message_id = plan
    forged = Receipt.create(
        SigningKey.generate(), instance_id=operation.instance_id, operation_id=operation.id,
        area="plan", message_id=message_id, kind="ack", device_id="customs2-device",
        signed_at=int(time.time()), sender_device_id=COORDINATOR,
    ).to_bytes()  # fmt: skip
    customs2 = operation.actors["customs2"].api
    with pytest.raises(InvalidSignatureError):
        await customs2.post_receipt(forged)
    with pytest.raises(ForbiddenError, match="its own receipts"):
        await customs2.post_receipt(
            receipt(operation, "customs", "plan", message_id, "ack", of="coordinator")
        )
    with pytest.raises(ForbiddenError, match="may not read"):
        await operation.actors["stakeholder"].api.post_receipt(
            receipt(operation, "stakeholder", "plan", message_id, "read", of="coordinator")
        )
    status = await operation.actors["coordinator"].api.receipts(
        operation.id, "plan", COORDINATOR, message_id
    )
    assert all(not o.read for o in status.organisations)


async def test_receipt_for_an_unknown_message_is_not_found(plan):
    """A receipt, or a status request, for a message the area does not hold answers 404."""
    operation, _ = plan
    unknown = uuid.uuid4()
    with pytest.raises(NotFoundError):
        await operation.actors["customs"].api.post_receipt(
            receipt(operation, "customs", "plan", unknown, "read", of="coordinator")
        )
    with pytest.raises(NotFoundError):
        await operation.actors["coordinator"].api.receipts(
            operation.id, "plan", COORDINATOR, str(unknown)
        )


async def test_receipt_of_another_instance_is_refused(plan):
    """A receipt signed for another instance cannot be replayed here."""
    operation, message_id = plan
    actor = operation.actors["customs"]
    other = Receipt.create(
        actor.identity.signing_key, instance_id="another-instance", operation_id=operation.id,
        area="plan", message_id=message_id, kind="read", device_id=actor.device_id,
        signed_at=int(time.time()), sender_device_id=COORDINATOR,
    ).to_bytes()  # fmt: skip
    with pytest.raises(BadRequestError, match="another instance"):
        await actor.api.post_receipt(other)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # keys: test_storage_blobs
async def test_receipts_are_per_sender_of_a_shared_message_id(operation):
    """Two devices post under one message id in one area: a receipt of one's message is not
    counted for the other's and names its sender, and a statement naming no sender (first
    encoding) is refused."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    shared = uuid.uuid4()
    for who in ("customs2", "customs"):  # the squatter first
        sent = envelope(operation, who, state, secret, 1, f"{who}'s", message_id=shared)
        await operation.actors[who].api.post_message(operation.id, "seizures", sent.to_bytes())
    wco = operation.actors["coordinator"].api

    def ack(of: str) -> bytes:
        return receipt(operation, "coordinator", "seizures", shared, "ack", of=of)

    first = await wco.post_receipt(ack("customs"))
    assert (first.created, first.sender) == (True, "customs-device")
    other = await wco.post_receipt(ack("customs2"))
    assert (other.created, other.sender) == (True, "customs2-device")  # not a repeat

    genuine = await wco.receipts(operation.id, "seizures", "customs-device", shared)
    squat = await wco.receipts(operation.id, "seizures", "customs2-device", shared)
    assert (genuine.sender, squat.sender) == ("customs-device", "customs2-device")
    assert [len(genuine.receipts), len(squat.receipts)] == [1, 1]
    named = Receipt.from_bytes(b64d(genuine.receipts[0]))
    assert named.sender_device_id == "customs-device"
    with pytest.raises(NotFoundError):
        await wco.receipts(operation.id, "seizures", COORDINATOR, shared)

    legacy = Receipt.create(
        operation.actors["coordinator"].identity.signing_key, instance_id=operation.instance_id,
        operation_id=operation.id, area="seizures", message_id=shared, kind="read",
        device_id=COORDINATOR, signed_at=int(time.time()),
    )  # fmt: skip
    with pytest.raises(BadRequestError, match="names no sender"):
        await wco.post_receipt(legacy.to_bytes())
