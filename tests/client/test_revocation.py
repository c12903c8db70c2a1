"""Revocation, removal and enrolment against a real server, honest or not (issue 9).

The malicious half lets the honest server record a revocation, then deletes it or stores what
the honest server refused (:mod:`.malicious`), and checks that members who once saw the
revocation keep refusing what it forbids. The honest half shows removal as an operation:
folded into `admit`, sticky until a coordinator re-admits, with single-use key packages.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import time

import pytest

from opseal.client import enrolment
from opseal.client.api import ApiClient
from opseal.client.client import Client
from opseal.client.errors import BadRequestError, ClientError, NotFoundError, UnauthorizedError
from opseal.client.membership import KEY_PACKAGE_TTL
from opseal.client.profile import Profile, ProfileInfo
from opseal.client.verifier import IntegrityWarning
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CommitError
from opseal.crypto.group import (
    Commit,
    DeviceIdentity,
    KeyPackage,
    create_commit,
    open_epoch_secret,
)
from opseal.crypto.keys import SigningKey, VerifyKey
from opseal.server.services import instance as admin

from .conftest import FAST, PASSPHRASE, enrol_client
from .malicious import Attacker, TamperedDatabase, attacker  # noqa: F401 (fixture)
from .test_malicious import LAPTOP, enrol_laptop, kinds, members, refusals, roster, state

TABLET = "de-customs-tablet"


async def pending_package(db: TamperedDatabase, op: str, area: str, device: str) -> KeyPackage:
    """The last key package ``device`` posted to ``area``, as the server stored it."""
    rows = [r for r in await db.entries(op, area, "key-package") if r.device_id == device]
    return KeyPackage.from_bytes(rows[-1].body)


async def enrol_and_join(server, onboarded, org: str, user: str, device: str) -> Client:
    """Enrol one more device of ``org`` and ask to join the operation's areas."""
    client = await enrol_client(server, onboarded.home, org, user, device, onboarded.roots[org])
    onboarded.clients[device] = client  # closed with the others
    await client.join(onboarded.operation_id, onboarded.roots["wco"].verify_key.key_id)
    return client


# -- a dishonest server ----------------------------------------------------------------------
async def test_revocation_deleted_server_side_does_not_bring_the_device_back(server, attacker):
    """Once members hold a revocation, deleting it on the server does not help: the
    coordinator's admit refuses the device's old key package, and other members refuse (as
    commit-refused) a commit that adds it anyway."""
    op, onboarded = attacker.op, attacker.onboarded
    await enrol_laptop(server, attacker)
    wco, fr, de = members(attacker, "wco", "fr-customs", "de-customs")
    await fr.revoke_device(onboarded.roots["fr-customs"], LAPTOP, "stolen")
    await wco.sync()
    await de.sync()
    await attacker.db.forget_revocations()
    old = await pending_package(attacker.db, op, "seizures", LAPTOP)

    assert await wco.admit() == []
    assert LAPTOP not in roster(wco, op, "seizures")

    # a coordinator device that never heard of the revocation adds the device; the server,
    # its revocation gone, accepts the commit
    commit, _, _ = create_commit(
        state(wco, op, "seizures"), await wco.charter(op), wco.identity, now=wco.now(),
        adds=[old],
    )  # fmt: skip
    await wco.api.post_commit(op, "seizures", commit.to_bytes())
    await de.sync()

    assert ("seizures", "commit-refused") in kinds(de)
    [message] = [m for area, kind, m in refusals(de) if kind == "commit-refused"]
    assert "revoked" in message
    assert LAPTOP not in roster(de, op, "seizures")


async def test_charter_signed_by_a_revoked_coordinator_key_is_refused(server, attacker):
    """A charter version signed with a coordinator's revoked identity key is refused by the
    server, and by a member when a dishonest server stores it anyway."""
    op, onboarded = attacker.op, attacker.onboarded
    deputy = await enrol_client(
        server, onboarded.home, "wco", "wco-deputy", "wco-deputy-device", onboarded.roots["wco"]
    )
    onboarded.clients["wco-deputy-device"] = deputy
    deputy_key, deputy_cert = await asyncio.to_thread(deputy.profile.load_user, PASSPHRASE)
    assert deputy_cert is not None
    wco, fr = members(attacker, "wco", "fr-customs")
    await wco.revoke(onboarded.roots["wco"], deputy_cert, "left the secretariat")
    current = await fr.charter(op)
    forged = current.next_version(issued_at=int(time.time()), name="Operation STOP V (taken)")
    forged = forged.signed(deputy_key, deputy_cert)

    with pytest.raises(BadRequestError, match="revoked"):
        await wco.api.publish_charter(op, forged.to_bytes())

    await attacker.db.add_charter_version(forged)
    await fr.sync()
    with pytest.raises(IntegrityWarning, match="revoked"):
        await fr.charter(op, refresh=True)
    assert ("", "charter-refused") in kinds(fr)
    assert (await fr.charter(op)).version == current.version


async def test_key_package_used_once_is_refused_the_second_time(server, attacker):
    """A key package that already admitted a device is refused when served again, even for a
    device a coordinator re-admits."""
    op = attacker.op
    await enrol_laptop(server, attacker)
    wco = attacker.onboarded.clients["wco"]
    used = await pending_package(attacker.db, op, "seizures", LAPTOP)
    assert LAPTOP in await wco.admit()
    assert LAPTOP in await wco.remove(op, device=LAPTOP)
    await attacker.db.add_key_package(used)

    assert await wco.admit(readmit=[LAPTOP]) == []

    assert LAPTOP not in roster(wco, op, "seizures")
    assert any(
        kind == "key-package-refused" and "already used once" in message
        for _, kind, message in refusals(wco)
    )


async def test_checkpoint_older_than_the_set_age_warns(onboarded, monkeypatch):
    """A newest audit checkpoint older than the age set is recorded as a checkpoint-stale
    warning; a fresh one is not."""
    fr = onboarded.clients["fr-customs"]
    await fr.verify_audit(max_age=3600)
    assert not [w for w in fr.warnings() if w[4] == "checkpoint-stale"]

    monkeypatch.setattr(fr, "now", lambda: int(time.time()) + 7200)
    await fr.verify_audit(max_age=3600)

    [warning] = [w for w in fr.warnings() if w[4] == "checkpoint-stale"]
    assert "more than 3600 s" in warning[5]


# -- an honest server ------------------------------------------------------------------------
async def test_admit_removes_a_revoked_device_and_admits_newcomers_in_one_commit(server, onboarded):
    """After a revocation one admit round removes the revoked device and adds a newcomer in a
    single commit, and the removed device can open nothing of the new epoch."""
    op = onboarded.operation_id
    wco, fr = onboarded.clients["wco"], onboarded.clients["fr-customs"]
    laptop = await enrol_and_join(server, onboarded, "fr-customs", "fr-officer-2", LAPTOP)
    assert LAPTOP in await wco.admit()
    await enrol_and_join(server, onboarded, "de-customs", "de-officer-2", TABLET)
    await fr.revoke_device(onboarded.roots["fr-customs"], LAPTOP, "stolen")
    before = state(wco, op, "seizures").epoch

    assert TABLET in await wco.admit()

    after = state(wco, op, "seizures")
    assert after.epoch == before + 1
    assert LAPTOP not in roster(wco, op, "seizures")
    assert TABLET in roster(wco, op, "seizures")
    rows = await TamperedDatabase(server.ctx.engine).entries(op, "seizures", "commit")
    commit = Commit.from_bytes(rows[-1].body)
    assert (commit.removes, [p.device_id for p in commit.adds]) == ((LAPTOP,), [TABLET])
    assert LAPTOP not in {s.device_id for s in commit.sealed}
    with pytest.raises(CommitError):
        open_epoch_secret(commit, after, laptop.identity)
    with pytest.raises(UnauthorizedError):
        await laptop.login()
    await fr.sync()
    assert LAPTOP not in roster(fr, op, "seizures")  # every member accepted the removal


async def test_removed_device_is_not_readmitted_without_readmit(server, onboarded):
    """A removed device that asks again with a fresh key package stays out of admit rounds
    until a coordinator names it with readmit."""
    op = onboarded.operation_id
    wco = onboarded.clients["wco"]
    laptop = await enrol_and_join(server, onboarded, "fr-customs", "fr-officer-2", LAPTOP)
    assert LAPTOP in await wco.admit()
    assert await wco.remove(op, device=LAPTOP) == [LAPTOP]
    await laptop.sync()
    await asyncio.sleep(1.1)  # a package of another second: fresh bytes, not the used ones
    await laptop.join(op, onboarded.roots["wco"].verify_key.key_id)

    assert await wco.admit() == []
    assert LAPTOP not in roster(wco, op, "seizures")

    assert LAPTOP in await wco.admit(readmit=[LAPTOP])
    assert LAPTOP in roster(wco, op, "seizures")


async def test_stale_key_package_is_refused(server, onboarded):
    """A key package made more than the expiry ago is not admitted, with a warning saying
    the device must ask again."""
    op = onboarded.operation_id
    wco = onboarded.clients["wco"]
    laptop = await enrol_client(
        server, onboarded.home, "fr-customs", "fr-officer-2", LAPTOP, onboarded.roots["fr-customs"]
    )
    onboarded.clients[LAPTOP] = laptop
    made = laptop.now() - KEY_PACKAGE_TTL - 60
    package = KeyPackage.create(laptop.identity, operation_id=op, area="seizures", now=made)
    await laptop.api.post_key_package(op, "seizures", package.to_bytes())

    assert await wco.admit() == []
    assert any("has expired" in w[5] for w in wco.warnings())


async def test_old_user_key_is_revocable_after_renewal_and_a_revoked_user_recertified(
    server, onboarded
):
    """A user key replaced by a renewal can still be revoked (its devices with it, the user
    staying in office), and a revoked user certified with a new key enrols devices again;
    members learn and verify each revocation."""
    fr = onboarded.clients["fr-customs"]
    root = onboarded.roots["fr-customs"]
    laptop = await enrol_client(server, onboarded.home, "fr-customs", "fr-officer-2", LAPTOP, root)
    onboarded.clients[LAPTOP] = laptop
    old_cert = laptop.identity.user_cert
    second = SigningKey.generate()
    second_cert = await fr.certify_user(
        root, user_id="fr-officer-2", identity_key=second.verify_key
    )

    await fr.revoke(root, old_cert, "old key lost")

    with pytest.raises(UnauthorizedError):
        await laptop.login()
    await register_and_login(server, fr, second, second_cert, "fr-officer-2-desk")

    await fr.revoke(root, second_cert, "left")  # the user is revoked
    third = SigningKey.generate()
    third_cert = await fr.certify_user(root, user_id="fr-officer-2", identity_key=third.verify_key)
    await register_and_login(server, fr, third, third_cert, "fr-officer-2-new")

    de = onboarded.clients["de-customs"]
    await de.sync()
    revoked = de.verifier.revoked()
    assert old_cert.signing_key.key_id in revoked
    assert second.verify_key.key_id in revoked
    assert third.verify_key.key_id not in revoked


async def register_and_login(server, focal: Client, user_key, user_cert, device_id: str) -> None:
    """Register a device certified by ``user_key`` and log it in."""
    now = int(time.time())
    device = DeviceIdentity.generate(
        user_key, user_cert, device_id=device_id, name=device_id, issued_at=now - 60,
        expires_at=now + 86400,
    )  # fmt: skip
    await focal.api.register_device(focal.org_id, device.device_cert.to_bytes())
    async with ApiClient(server.url) as api:
        await api.login(focal.info.instance_id, device_id, device.signing_key)


# -- enrolment by request ----------------------------------------------------------------------
def _private_keys(profile: Profile) -> list[bytes]:
    user_key, _ = profile.load_user(PASSPHRASE)
    identity, _ = profile.load_device(PASSPHRASE)
    return [
        user_key.private_bytes(),
        identity.signing_key.private_bytes(),
        identity.hpke_key.private_bytes(),
    ]


def _everything_in(profile: Profile) -> list[bytes]:
    """Every file of a profile, with its key files opened."""
    out = []
    for path in profile.path.rglob("*"):
        if path.is_file():
            out.append(path.read_bytes())
            if path.suffix == ".key":
                out.append(repr(profile.load_key(path.stem, PASSPHRASE)).encode())
    return out


async def test_enrolment_by_request_keeps_private_keys_on_the_device(server, onboarded):
    """A device enrolled by request makes its keys itself: neither the request nor anything
    in the focal point's profile holds them, and the device logs in afterwards."""
    focal, root = onboarded.clients["fr-customs"], onboarded.roots["fr-customs"]
    phone = Profile("fr-officer-3-phone", onboarded.home)
    info = ProfileInfo(
        server=server.url, org_id="fr-customs", user_id="fr-officer-3",
        device_id="fr-officer-3-phone",
    )  # fmt: skip
    request = await asyncio.to_thread(
        enrolment.request_enrolment, phone, info=info, passphrase=PASSPHRASE, params=FAST
    )
    text = enrolment.encode_request(request)

    received = enrolment.read_request(text)
    cert = await enrolment.certify_request(
        focal.api, focal.org_id, root, received, request.fingerprint
    )
    log_key = server_log_fingerprint(onboarded)
    await enrolment.complete_enrolment(
        phone, enrolment.encode_response(cert), PASSPHRASE, log_key=log_key, params=FAST
    )

    async with await Client.open(phone, PASSPHRASE) as client:
        assert (await client.api.whoami()).user_id == "fr-officer-3"
    secrets = await asyncio.to_thread(_private_keys, phone)
    stored = await asyncio.to_thread(_everything_in, focal.profile)
    for blob in [text.encode(), request.to_bytes(), *stored]:
        assert not any(secret in blob for secret in secrets)
        assert not any(b64e(secret).encode() in blob for secret in secrets)


async def test_tampered_request_or_wrong_fingerprint_is_refused(server, onboarded):
    """An altered request is refused for its signature, and a fingerprint that does not
    match stops the focal point before anything is registered."""
    focal, root = onboarded.clients["fr-customs"], onboarded.roots["fr-customs"]
    phone = Profile("fr-officer-3-phone", onboarded.home)
    info = ProfileInfo(
        server=server.url, org_id="fr-customs", user_id="fr-officer-3",
        device_id="fr-officer-3-phone",
    )  # fmt: skip
    request = await asyncio.to_thread(
        enrolment.request_enrolment, phone, info=info, passphrase=PASSPHRASE, params=FAST
    )
    raw = bytearray(request.to_bytes())
    at = raw.index(b"fr-officer-3")
    raw[at : at + 12] = b"fr-officer-9"
    tampered = f"{enrolment.REQUEST_HEADER}\n{b64e(bytes(raw))}\n"

    with pytest.raises(ClientError, match=r"enrolment request refused: .*bad signature"):
        enrolment.read_request(tampered)
    with pytest.raises(ClientError, match="fingerprint read out does not match"):
        await enrolment.certify_request(
            focal.api, focal.org_id, root, request, "00000 00000 00000 00000 00000 00000"
        )
    with pytest.raises(NotFoundError):
        await focal.api.device("fr-officer-3-phone")


async def test_enrolment_stops_when_the_log_key_differs(server, onboarded):
    """Enrolment with a log key fingerprint other than the instance's stops before the
    one-time code is spent or anything is saved."""
    code = await admin.create_enrolment_code(server.ctx, "fr-customs")
    profile = Profile("fr-officer-4", onboarded.home)
    with pytest.raises(ClientError, match="audit log key"):
        await Client.enrol(
            profile, server=server.url, code=code, passphrase=PASSPHRASE,
            root=onboarded.roots["fr-customs"], org_id="fr-customs", user_id="fr-officer-4",
            device_id="fr-officer-4", params=FAST, log_key="12345 12345 12345 12345 12345 12345",
        )  # fmt: skip
    assert not await asyncio.to_thread(lambda: profile.exists)
    client = await Client.enrol(  # the same code still works
        profile, server=server.url, code=code, passphrase=PASSPHRASE,
        root=onboarded.roots["fr-customs"], org_id="fr-customs", user_id="fr-officer-4",
        device_id="fr-officer-4", params=FAST, log_key=server_log_fingerprint(onboarded),
    )  # fmt: skip
    await client.close()


def server_log_fingerprint(onboarded) -> str:
    return VerifyKey(b64d(onboarded.clients["wco"].info.log_key)).fingerprint
