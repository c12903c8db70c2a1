"""Identity storage (organisations, users, devices, revocations, enrolment codes, challenges,
sessions) on every backend, without the HTTP layer or the services' rules."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from opseal.server.storage import identity

from .storage_seed import NOW, device, opened, org, tx, user


@pytest.fixture
async def engine(database_url):
    async with opened(database_url) as engine:
        yield engine


@pytest.fixture
async def people(engine):
    """'wco' with user 'ann' (two devices) and 'fr' with user 'bob' (one device)."""
    async with tx(engine) as conn:
        await org(conn, "wco", coordinate=True)
        await org(conn, "fr")
        await user(conn, "wco", "ann", b"k-ann")
        await user(conn, "fr", "bob", b"k-bob")
        await device(conn, "wco", "ann", "ann-1", b"k-ann-1")
        await device(conn, "wco", "ann", "ann-2", b"k-ann-2")
        await device(conn, "fr", "bob", "bob-1", b"k-bob-1")
    return engine


async def test_organisations_round_trip_and_count(engine):
    """An organisation reads back as inserted, without a root key until one is set."""
    async with tx(engine) as conn:
        await org(conn, "wco", coordinate=True)
        await org(conn, "fr")
        await identity.set_root_key(conn, "fr", b"R" * 32)
    async with engine.connect() as conn:
        wco = await identity.organisation(conn, "wco")
        assert (wco.name, wco.kind, wco.can_coordinate, wco.root_key) == (
            "WCO",
            "customs",
            True,
            None,
        )
        assert await identity.organisation(conn, "nobody") is None
        keys = await identity.root_keys(conn, ["wco", "fr", "nobody"])
        assert keys == {"wco": None, "fr": b"R" * 32}
        assert await identity.root_keys(conn, []) == {}
        assert await identity.count_organisations(conn) == 2


async def test_a_second_organisation_with_the_same_id_conflicts(engine):
    """Inserting an existing organisation id raises and the first row is unchanged."""
    async with tx(engine) as conn:
        await org(conn, "wco", coordinate=True)
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await identity.insert_organisation(conn, "wco", "Other", "x", False, NOW)
    async with engine.connect() as conn:
        assert (await identity.organisation(conn, "wco")).name == "WCO"


async def test_enrolment_codes_are_read_by_hash_and_marked_used(engine):
    """A code reads back by its hash, unused until marked with the time of use."""
    async with tx(engine) as conn:
        await org(conn, "wco")
        await identity.insert_enrolment_code(conn, b"H" * 32, "wco", NOW + 60, NOW)
    async with tx(engine) as conn:
        code = await identity.enrolment_code(conn, b"H" * 32)
        assert (code.org_id, code.expires_at, code.used_at) == ("wco", NOW + 60, None)
        await identity.use_enrolment_code(conn, b"H" * 32, NOW + 5)
    async with engine.connect() as conn:
        assert (await identity.enrolment_code(conn, b"H" * 32)).used_at == NOW + 5
        assert await identity.enrolment_code(conn, b"X" * 32) is None


async def test_users_round_trip_renew_and_conflict(people):
    """A user's certificate reads by id and by identity key; a renewal replaces both; a second
    insert of the same user raises."""
    async with tx(people) as conn:
        assert await identity.user_certificate(conn, "wco", "ann") == b"cert:ann"
        assert await identity.user_certificate(conn, "fr", "ann") is None
        assert await identity.user_certificate_by_key(conn, "wco", b"k-ann") == b"cert:ann"
        assert await identity.user_certificate_by_key(conn, "fr", b"k-ann") is None
        await identity.update_user_certificate(
            conn, "wco", "ann", certificate=b"cert2", identity_key_id=b"k2", expires_at=NOW + 9
        )
    async with people.connect() as conn:
        assert await identity.user_certificate(conn, "wco", "ann") == b"cert2"
        assert await identity.user_certificate_by_key(conn, "wco", b"k2") == b"cert2"
        assert await identity.user_certificate_by_key(conn, "wco", b"k-ann") is None
    with pytest.raises(IntegrityError):
        async with tx(people) as conn:
            await user(conn, "wco", "ann", b"k-other")


async def test_devices_round_trip_and_conflict(people):
    """A device reads back by id (with its user's certificate), by key, and as its signing key
    and organisation; a second device with the same id raises."""
    async with people.connect() as conn:
        assert await identity.device_exists(conn, "ann-1")
        assert not await identity.device_exists(conn, "ghost")
        record = await identity.device_with_user(conn, "ann-2")
        assert (record.org_id, record.user_id, record.certificate) == ("wco", "ann", b"cert:ann-2")
        assert (record.user_certificate, record.revoked_at) == (b"cert:ann", None)
        assert await identity.device_with_user(conn, "ghost") is None
        by_key = await identity.device_by_key(conn, "wco", b"k-ann-1")
        assert tuple(by_key) == ("ann-1", b"cert:ann-1")
        assert await identity.device_by_key(conn, "fr", b"k-ann-1") is None
        assert await identity.device_signing_key(conn, "bob-1") == b"pk:bob-1"
        assert await identity.device_org(conn, "bob-1") == "fr"
        assert await identity.device_org(conn, "ghost") is None
    with pytest.raises(IntegrityError):
        async with tx(people) as conn:
            await device(conn, "fr", "bob", "ann-1", b"k-x")


async def test_revoking_a_user_key_reaches_its_devices_and_ends_their_sessions(people):
    """Revoking a user's key marks the user and its devices revoked and deletes their
    sessions; other organisations' devices and sessions stay."""
    async with tx(people) as conn:
        for token, dev in ((b"t-ann-1", "ann-1"), (b"t-ann-2", "ann-2"), (b"t-bob", "bob-1")):
            await identity.insert_session(conn, token, dev, NOW + 100, NOW)
        await identity.insert_revocation(conn, "wco", b"k-ann", b"statement", NOW)
        await identity.revoke_users_with_key(conn, "wco", b"k-ann", NOW + 1)
        revoked = await identity.devices_of_users_with_key(conn, "wco", b"k-ann")
        assert sorted(revoked) == ["ann-1", "ann-2"]
        assert await identity.devices_of_users_with_key(conn, "fr", b"k-ann") == []
        await identity.revoke_devices(conn, revoked, NOW + 1)
    async with people.connect() as conn:
        assert await one_session(conn, b"t-ann-1") is None
        assert await one_session(conn, b"t-ann-2") is None
        assert (await identity.device_with_user(conn, "ann-1")).revoked_at == NOW + 1
        bob = await one_session(conn, b"t-bob")
        assert (bob.device_id, bob.revoked_at, bob.user_revoked_at) == ("bob-1", None, None)
        assert await identity.revoked_key_ids(conn, "wco") == {b"k-ann"}
        assert await identity.revoked_key_ids(conn, "fr") == set()
        assert await identity.revoked_key_ids(conn) == {b"k-ann"}


async def one_session(conn, token_hash: bytes):
    return (await identity.session_principals(conn, [token_hash])).get(token_hash)


async def test_sessions_are_read_together_by_token_hash(people):
    """Many sessions read in one query come back by token hash; unknown hashes are absent."""
    async with tx(people) as conn:
        await identity.insert_session(conn, b"t1", "bob-1", NOW + 10, NOW)
        await identity.insert_session(conn, b"t2", "ann-1", NOW + 20, NOW)
    async with people.connect() as conn:
        found = await identity.session_principals(conn, [b"t1", b"nope", b"t2"])
    assert {token: (row.device_id, row.expires_at) for token, row in found.items()} == {
        b"t1": ("bob-1", NOW + 10),
        b"t2": ("ann-1", NOW + 20),
    }


async def test_a_session_names_its_device_user_and_revocations(people):
    """A session reads back with its expiry, device, organisation, user kind and revocation
    times, and is gone once deleted."""
    async with tx(people) as conn:
        await identity.insert_session(conn, b"tok", "bob-1", NOW + 3600, NOW)
    async with people.connect() as conn:
        row = await one_session(conn, b"tok")
        assert (row.expires_at, row.device_id, row.org_id, row.user_id, row.kind) == (
            NOW + 3600,
            "bob-1",
            "fr",
            "bob",
            "person",
        )
        assert await one_session(conn, b"other") is None
    async with tx(people) as conn:
        await identity.revoke_users_with_key(conn, "fr", b"k-bob", NOW + 2)
    async with people.connect() as conn:
        assert (await one_session(conn, b"tok")).user_revoked_at == NOW + 2
    async with tx(people) as conn:
        await identity.delete_session(conn, b"tok")
    async with people.connect() as conn:
        assert await one_session(conn, b"tok") is None


async def test_a_challenge_is_taken_once_by_its_device(engine):
    """A challenge is deleted and its expiry returned when its own device takes it, once;
    another device cannot take it."""
    async with tx(engine) as conn:
        await identity.insert_challenge(conn, b"c" * 32, "dev-a", NOW + 120)
    async with tx(engine) as conn:
        assert await identity.take_challenge(conn, b"c" * 32, "dev-b") is None
        assert await identity.take_challenge(conn, b"c" * 32, "dev-a") == NOW + 120
        assert await identity.take_challenge(conn, b"c" * 32, "dev-a") is None


async def test_only_expired_challenges_are_swept(engine):
    """Sweeping at a time removes the challenges expired by then and keeps the others."""
    async with tx(engine) as conn:
        await identity.insert_challenge(conn, b"old", "dev-a", NOW)
        await identity.insert_challenge(conn, b"new", "dev-a", NOW + 1)
        await identity.delete_expired_challenges(conn, NOW)
    async with tx(engine) as conn:
        assert await identity.take_challenge(conn, b"old", "dev-a") is None
        assert await identity.take_challenge(conn, b"new", "dev-a") == NOW + 1
