"""Helpers for server tests: real areas, messages and receipts built with the crypto core."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from opseal.crypto.charter import AreaPolicy
from opseal.crypto.envelope import Envelope, Header, seal
from opseal.crypto.group import GroupState, KeyPackage, create_area, create_commit
from opseal.crypto.statements import Receipt

if TYPE_CHECKING:
    from .conftest import Operation


async def make_area(
    operation: Operation, area: str, members: list[str]
) -> tuple[GroupState, bytes]:
    """The coordinator creates ``area``; each other actor posts its key package and the
    coordinator admits them all in one commit. Returns the last state and epoch secret."""
    coordinator = operation.actors["coordinator"]
    api, now = coordinator.api, int(time.time())
    commit, state, secret = create_area(
        operation.world.charter,
        coordinator.identity,
        instance_id=operation.instance_id,
        area=area,
        now=now,
    )
    await api.post_commit(operation.id, area, commit.to_bytes())
    joining = [who for who in members if who != "coordinator"]
    for who in joining:
        await operation.actors[who].api.post_key_package(
            operation.id, area, operation.package(who, area)
        )
    if joining:
        packages = [KeyPackage.from_bytes(p) for p in await api.key_packages(operation.id, area)]
        commit, state, secret = create_commit(
            state, operation.world.charter, coordinator.identity, now=now, adds=packages
        )
        await api.post_commit(operation.id, area, commit.to_bytes())
    return state, secret


def envelope(
    operation: Operation,
    who: str,
    state: GroupState,
    secret: bytes,
    counter: int,
    text: str = "hello",
    message_id: uuid.UUID | None = None,
    **header: object,
) -> Envelope:
    """An envelope sealed by ``who``'s device for ``state``'s area and epoch."""
    actor = operation.actors[who]
    head = Header(
        operation.instance_id,
        operation.id,
        state.area,
        state.epoch,
        actor.device_id,
        counter,
        message_id or uuid.uuid4(),
        str(header.pop("content_type", "text")),
        client_time_ms=int(time.time() * 1000),
        **header,  # type: ignore[arg-type]
    )
    return seal(head, text.encode(), secret, actor.identity.signing_key)


async def post_text(
    operation: Operation,
    who: str,
    area: str,
    state: GroupState,
    secret: bytes,
    counter: int,
    requires_ack: bool = False,
) -> uuid.UUID:
    """Seal a short text message as ``who`` and post it; returns its message id."""
    sealed = envelope(
        operation,
        who,
        state,
        secret,
        counter,
        "Operational Plan v1 attached",
        requires_ack=requires_ack,
    )
    await operation.actors[who].api.post_message(operation.id, area, sealed.to_bytes())
    return sealed.header.message_id


def receipt(
    operation: Operation, who: str, area: str, message_id: uuid.UUID, kind: str, *, of: str
) -> bytes:
    """A ``read`` or ``ack`` receipt signed by ``who``'s device for actor ``of``'s message."""
    actor = operation.actors[who]
    return Receipt.create(
        actor.identity.signing_key,
        instance_id=operation.instance_id,
        operation_id=operation.id,
        area=area,
        message_id=message_id,
        kind=kind,
        device_id=actor.device_id,
        signed_at=int(time.time()),
        sender_device_id=operation.actors[of].device_id,
    ).to_bytes()


async def remove_partner_read_right(operation: Operation) -> None:
    """The coordinator publishes charter version 2: the partner role no longer reads
    'seizures' (its device stays in the area's roster)."""
    charter = operation.world.charter
    areas = [
        AreaPolicy(a.name, a.read_roles - {"partner"}, a.post_roles - {"partner"}, a.history)
        if a.name == "seizures"
        else a
        for a in charter.areas
    ]
    coordinator = operation.world.user("wco", "ocu-lead")
    v2 = charter.next_version(issued_at=int(time.time()) - 1, areas=areas)
    signed = v2.signed(coordinator.key, coordinator.cert)
    await operation.actors["coordinator"].api.publish_charter(operation.id, signed.to_bytes())
