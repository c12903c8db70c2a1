"""Attacks on revocation by a hostile server, a hostile member or a stranger (review of issue 9).

Each test plays one attack found in review against the real server on loopback and checks
that it fails.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import insert

from opseal.client.errors import ConflictError, UnauthorizedError
from opseal.client.verifier import IntegrityWarning
from opseal.crypto.certs import Revocation
from opseal.crypto.charter import Charter, Member
from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey
from opseal.server.storage.db import write_transaction
from opseal.server.storage.tables import revocations

from .conftest import AREAS, ORGS, PASSPHRASE, enrol_client
from .malicious import attacker  # noqa: F401 (fixture)
from .test_malicious import LAPTOP, enrol_laptop, kinds, members, roster, synced
from .test_revocation import enrol_and_join


async def test_new_joiner_refuses_a_charter_signed_by_a_revoked_coordinator_key(server, attacker):
    """A device joining after a coordinator key was revoked refuses a charter version the
    server stored although that key signed it, even though it holds no charter yet."""
    op, onboarded = attacker.op, attacker.onboarded
    deputy = await enrol_client(
        server, onboarded.home, "wco", "wco-deputy", "wco-deputy-device", onboarded.roots["wco"]
    )
    onboarded.clients["wco-deputy-device"] = deputy
    deputy_key, deputy_cert = await asyncio.to_thread(deputy.profile.load_user, PASSPHRASE)
    assert deputy_cert is not None
    (wco,) = members(attacker, "wco")
    await wco.revoke(onboarded.roots["wco"], deputy_cert, "left the secretariat")
    current = await wco.charter(op)
    forged = current.next_version(issued_at=int(time.time()), name="Operation STOP V (taken)")
    await attacker.db.add_charter_version(forged.signed(deputy_key, deputy_cert))

    with pytest.raises(IntegrityWarning, match="revoked"):
        await enrol_and_join(server, onboarded, "fr-customs", "fr-officer-2", "fr-laptop-2")
    joiner = onboarded.clients["fr-laptop-2"]
    assert ("", "charter-refused") in kinds(joiner)


async def test_another_operations_coordinator_cannot_revoke_keys_in_this_operation(
    server, attacker
):
    """A coordinator who lists an organisation under a root it controls in its own operation,
    and a server that serves the revocations that root signs, revoke nothing in another
    operation a device shares with that organisation."""
    op, roots = attacker.op, attacker.onboarded.roots
    wco, fr, de = await synced(attacker, "wco", "fr-customs", "de-customs")
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    other = await wco.create_operation(
        Charter.create(
            operation_id="op-other", code="OTHER", name="Operation Other",
            starts_at=wco.now(), ends_at=wco.now() + 86400,
            members=[
                Member(org, *ORGS[org], roots[org].verify_key, ())
                for org in ("wco", "de-customs")
            ],
            areas=AREAS, issued_at=wco.now() - 5,
        ),
        user_key,
    )  # fmt: skip
    fake_root = SigningKey.generate()
    listed = [*other.members, Member("fr-customs", *ORGS["fr-customs"], fake_root.verify_key, ())]
    taken = other.next_version(issued_at=wco.now() - 1, members=listed)
    await attacker.db.add_charter_version(taken.signed(user_key, wco.identity.user_cert))
    await de.join("op-other", roots["wco"].verify_key.key_id)
    forged = Revocation.issue(
        fake_root, organisation_id="fr-customs", subject_id="fr-customs-device",
        revoked_key=fr.identity.signing_key.verify_key, reason="forged",
        revoked_at=wco.now() - 3600,
    )  # fmt: skip
    async with write_transaction(attacker.db.engine) as conn:
        await conn.execute(
            insert(revocations).values(
                org_id="fr-customs", revoked_key_id=forged.revoked_key_id,
                statement=forged.to_bytes(), created_at=int(time.time()),
            )
        )  # fmt: skip
    await de.sync()

    message_id = await fr.post(op, "seizures", "seizure", {"record_id": "FR-1"})
    await de.sync()

    assert [m.message_id for m in de.read(op, "seizures")] == [message_id]
    assert fr.identity.signing_key.verify_key.key_id not in de.verifier.revoked(
        await de.charter(op)
    )


async def test_a_colleague_cannot_roll_back_a_renewal_or_reinstate_a_revoked_user(
    server, onboarded
):
    """A device of the same organisation that uploads a user's older certificate neither
    rolls back the user's renewal nor reinstates the user once revoked, so the devices the
    old key certified stay locked out."""
    fr, root = onboarded.clients["fr-customs"], onboarded.roots["fr-customs"]
    laptop = await enrol_client(server, onboarded.home, "fr-customs", "fr-officer-2", LAPTOP, root)
    onboarded.clients[LAPTOP] = laptop
    old_cert = laptop.identity.user_cert
    renewed = await fr.certify_user(
        root, user_id="fr-officer-2", identity_key=SigningKey.generate().verify_key
    )

    with pytest.raises(ConflictError, match=r"already certified|before the current"):
        await fr.api.register_user(fr.org_id, old_cert.to_bytes())
    await fr.revoke(root, renewed, "left")
    with pytest.raises(ConflictError, match=r"already certified|before the current"):
        await fr.api.register_user(fr.org_id, old_cert.to_bytes())

    with pytest.raises(UnauthorizedError):
        await laptop.login()


async def test_an_organisation_removed_stays_out_when_another_of_its_devices_asks(
    server, onboarded
):
    """After `remove --org`, another device of that organisation asking to join is not
    admitted by later admit rounds until a coordinator names the organisation in readmit."""
    op, wco = onboarded.operation_id, onboarded.clients["wco"]
    assert "fr-customs-device" in await wco.remove(op, org="fr-customs")
    await enrol_and_join(server, onboarded, "fr-customs", "fr-officer-2", LAPTOP)

    assert await wco.admit() == []
    assert LAPTOP not in roster(wco, op, "seizures")

    assert LAPTOP in await wco.admit(readmit=["fr-customs"])
    assert LAPTOP in roster(wco, op, "seizures")


async def test_a_revocation_served_once_with_a_bogus_certificate_is_not_buried(server, attacker):
    """A server that first serves a genuine revocation with another key's certificate (so the
    member refuses that copy) cannot stop the genuine copy served later from counting."""
    op = attacker.op
    laptop = await enrol_laptop(server, attacker)
    fr = attacker.onboarded.clients["fr-customs"]
    de = await attacker.victim("de-customs")
    bogus = b64e(de.identity.device_cert.to_bytes())
    genuine: list[dict] = []

    def bury(page: dict) -> dict:
        if page["revocations"]:
            genuine.extend(page["revocations"])
            return {**page, "revocations": [
                {**item, "subject_certificate": bogus} for item in page["revocations"]
            ]}  # fmt: skip
        served, genuine[:] = list(genuine), []
        return {**page, "revocations": served}

    attacker.proxy.rewrite(r"/api/v1/revocations", bury)
    await fr.revoke_device(attacker.onboarded.roots["fr-customs"], LAPTOP, "stolen")
    await de.sync()

    assert ("", "revocation-refused") in kinds(de)
    assert laptop.identity.signing_key.verify_key.key_id in de.verifier.revoked(
        await de.charter(op)
    )


async def test_the_revoker_keeps_its_own_revocation_when_the_server_never_serves_it(
    server, attacker
):
    """A focal point's device counts the revocation it signed even if the server never
    serves it back."""
    op = attacker.op
    laptop = await enrol_laptop(server, attacker)
    fr = await attacker.victim("fr-customs")
    attacker.proxy.rewrite(r"/api/v1/revocations", lambda page: {**page, "revocations": []})

    await fr.revoke_device(attacker.onboarded.roots["fr-customs"], LAPTOP, "stolen")
    await fr.sync()

    assert laptop.identity.signing_key.verify_key.key_id in fr.verifier.revoked(
        await fr.charter(op)
    )
