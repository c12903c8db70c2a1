"""Rules the suite did not prove one by one (issue 12), each against the real server.

Each test fails when its one check is removed from the server (mutation-tested by hand):
token expiry, one-time enrolment codes, revocation of devices and users (sessions deleted and
``revoked_at`` checked on its own), roster membership for posting, and rising counters.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select, update

from opseal.client.errors import CounterRefusedError, ForbiddenError, UnauthorizedError
from opseal.crypto.certs import Revocation
from opseal.crypto.envelope import MAX_COUNTER_JUMP
from opseal.server.http.stream import HUB
from opseal.server.services import identity
from opseal.server.services import instance as admin
from opseal.server.storage.tables import devices, events, sessions, users
from opseal.wire.stream import StreamError, StreamEvent, StreamIdle

from .conftest import enrol
from .helpers import envelope, make_area, post_text


async def count(server, query) -> int:
    async with server.ctx.engine.connect() as conn:
        return (await conn.execute(query)).scalar_one()


def sessions_of(device_id: str):
    return select(func.count()).select_from(sessions).where(sessions.c.device_id == device_id)


def messages_in(operation, area: str):
    return (
        select(func.count())
        .select_from(events)
        .where(
            events.c.operation_id == operation.id, events.c.area == area, events.c.kind == "message"
        )
    )


# -- tokens ----------------------------------------------------------------------------------
async def test_a_token_works_until_the_last_second_of_its_lifetime_and_gets_401_after(operation):
    """A token is accepted one second before its expiry and refused (401) at it."""
    server, api = operation.server, operation.actors["customs"].api
    ttl, start = server.ctx.settings.token_ttl, time.time()
    await api.login(
        operation.instance_id, "customs-device", operation.actors["customs"].identity.signing_key
    )
    try:
        server.ctx.clock = lambda: start + ttl - 1
        assert (await api.whoami()).device_id == "customs-device"
        server.ctx.clock = lambda: start + ttl + 1
        with pytest.raises(UnauthorizedError, match="expired"):
            await api.whoami()
    finally:
        server.ctx.clock = time.time


# -- enrolment codes -------------------------------------------------------------------------
async def test_a_spent_enrolment_code_cannot_enrol_a_second_device(operation):
    """The code that enrolled one device is refused for the next, which is not registered."""
    server, world = operation.server, operation.world
    code = await admin.create_enrolment_code(server.ctx, "fr-customs")
    first = world.device("fr-customs", "first-user", "first-device")
    second = world.device("fr-customs", "second-user", "second-device")
    api = await server.client()
    await api.enrol(code, first.user_cert.to_bytes(), first.device_cert.to_bytes())
    with pytest.raises(UnauthorizedError, match="used"):
        await api.enrol(code, second.user_cert.to_bytes(), second.device_cert.to_bytes())
    query = select(func.count()).select_from(devices).where(devices.c.device_id == "second-device")
    assert await count(server, query) == 0


# -- revocation ------------------------------------------------------------------------------
async def test_a_revoked_device_old_token_gets_401_and_its_sessions_are_gone(operation):
    """After a device's revocation its token is refused and no session row of it remains."""
    server, world = operation.server, operation.world
    victim = await enrol(server, world, "fr-customs", "customs-user", "stolen-device")
    assert await count(server, sessions_of("stolen-device")) == 1
    statement = Revocation.issue(
        world.roots["fr-customs"], organisation_id="fr-customs", subject_id="stolen-device",
        revoked_key=victim.identity.signing_key.verify_key, reason="stolen",
        revoked_at=int(time.time()),
    )  # fmt: skip
    await operation.actors["customs"].api.revoke("fr-customs", statement.to_bytes())
    assert await count(server, sessions_of("stolen-device")) == 0
    with pytest.raises(UnauthorizedError):
        await victim.api.whoami()


async def test_a_revoked_user_devices_old_tokens_get_401_and_their_sessions_are_gone(operation):
    """Revoking a user's identity key ends every session of the user's devices."""
    server, world = operation.server, operation.world
    laptop = await enrol(server, world, "fr-customs", "leaver", "leaver-laptop")
    phone = await enrol(server, world, "fr-customs", "leaver", "leaver-phone")
    user = world.user("fr-customs", "leaver")
    statement = Revocation.issue(
        world.roots["fr-customs"], organisation_id="fr-customs", subject_id="leaver",
        revoked_key=user.key.verify_key, reason="left the service", revoked_at=int(time.time()),
    )  # fmt: skip
    await operation.actors["customs"].api.revoke("fr-customs", statement.to_bytes())
    for actor in (laptop, phone):
        assert await count(server, sessions_of(actor.device_id)) == 0
        with pytest.raises(UnauthorizedError):
            await actor.api.whoami()


async def _follow(api, seen: list[object], idle: asyncio.Event) -> None:
    async for message in api.stream(""):
        seen.append(message)
        if isinstance(message, StreamIdle):
            idle.set()


async def test_a_revoked_device_open_stream_ends_at_the_hub_re_check_and_others_go_on(
    operation,
):
    """A revoked device's open stream gets an unauthorised error at the hub's periodic
    re-check (all streams at once) and ends, receiving nothing more; another device's stream,
    re-checked in the same pass, stays open and receives the next message."""
    server, world = operation.server, operation.world
    operation.actors["stolen"] = await enrol(server, world, "fr-customs", "customs-user", "stolen")
    state, secret = await make_area(operation, "seizures", ["customs", "partner", "stolen"])
    streams = {}
    for who in ("stolen", "partner"):
        seen: list[object] = []
        idle = asyncio.Event()
        task = asyncio.create_task(_follow(operation.actors[who].api, seen, idle))
        await asyncio.wait_for(idle.wait(), 10)
        streams[who] = (task, seen)
    statement = Revocation.issue(
        world.roots["fr-customs"], organisation_id="fr-customs", subject_id="stolen",
        revoked_key=operation.actors["stolen"].identity.signing_key.verify_key,
        reason="stolen", revoked_at=int(time.time()),
    )  # fmt: skip
    await operation.actors["customs"].api.revoke("fr-customs", statement.to_bytes())
    await server.runner.app[HUB].sweep_once()
    stolen_task, stolen_seen = streams["stolen"]
    await asyncio.wait_for(stolen_task, 5)
    assert isinstance(stolen_seen[-1], StreamError)
    assert stolen_seen[-1].error.code == "unauthorized"
    await post_text(operation, "customs", "seizures", state, secret, 1)
    partner_task, partner_seen = streams["partner"]
    async with asyncio.timeout(5):
        while not any(_is_message(m) for m in partner_seen):
            await asyncio.sleep(0.02)
    assert not partner_task.done()
    partner_task.cancel()
    assert not any(_is_message(m) for m in stolen_seen)


def _is_message(message: object) -> bool:
    return isinstance(message, StreamEvent) and message.event.kind == "message"


@pytest.mark.parametrize("table", ["device", "user"])
async def test_authentication_refuses_a_revoked_device_or_user_while_a_session_remains(
    operation, table, monkeypatch
):
    """A revocation marked on the device or the user is enough for 401, even with a session
    row left (e.g. written by another node before the revocation reached it), once this
    node's session cache has lived out its (here shortened) lifetime."""
    monkeypatch.setattr(identity, "SESSION_CACHE_SECONDS", 0.1)
    server, actor = operation.server, operation.actors["customs2"]
    assert (await actor.api.whoami()).device_id == "customs2-device"
    target = devices if table == "device" else users
    column = target.c.device_id if table == "device" else target.c.user_id
    key = "customs2-device" if table == "device" else "customs2-user"
    async with server.ctx.engine.begin() as conn:
        await conn.execute(update(target).where(column == key).values(revoked_at=int(time.time())))
    assert await count(server, sessions_of("customs2-device")) == 1
    await asyncio.sleep(0.15)
    with pytest.raises(UnauthorizedError, match="revoked"):
        await actor.api.whoami()


# -- roster ----------------------------------------------------------------------------------
async def test_a_non_roster_device_signed_current_epoch_envelope_gets_403_and_is_not_stored(
    operation,
):
    """A device of a member organisation that may post to the area, validly signing an envelope
    for the current epoch, is refused while it is not in the area's roster."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    before = await count(operation.server, messages_in(operation, "seizures"))
    sent = envelope(operation, "customs2", state, secret, 1, "not admitted yet")
    with pytest.raises(ForbiddenError, match="not a member of area"):
        await operation.actors["customs2"].api.post_message(
            operation.id, "seizures", sent.to_bytes()
        )
    assert await count(operation.server, messages_in(operation, "seizures")) == before


# -- counters --------------------------------------------------------------------------------
async def test_a_sender_counters_must_rise_by_at_most_the_documented_jump(operation):
    """A repeated or lower counter and a jump above MAX_COUNTER_JUMP are refused with
    counter_refused and store nothing; a jump of exactly the maximum is stored, and resending
    a stored envelope stays idempotent."""
    state, secret = await make_area(operation, "seizures", ["customs"])
    api, area = operation.actors["customs"].api, "seizures"
    first = envelope(operation, "customs", state, secret, 5)
    seq = await api.post_message(operation.id, area, first.to_bytes())
    assert await api.post_message(operation.id, area, first.to_bytes()) == seq
    for counter in (5, 4, 5 + MAX_COUNTER_JUMP + 1):
        again = envelope(operation, "customs", state, secret, counter)
        with pytest.raises(CounterRefusedError) as refused:
            await api.post_message(operation.id, area, again.to_bytes())
        assert refused.value.status == 409
        assert refused.value.details["last_counter"] == 5
    batch = [envelope(operation, "customs", state, secret, c).to_bytes() for c in (7, 6)]
    with pytest.raises(CounterRefusedError, match=r"envelopes\[1\]"):
        await api.post_batch(operation.id, area, batch)
    assert await count(operation.server, messages_in(operation, area)) == 1
    top = envelope(operation, "customs", state, secret, 5 + MAX_COUNTER_JUMP)
    assert await api.post_message(operation.id, area, top.to_bytes()) == seq + 1
