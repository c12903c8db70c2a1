"""Operation charters and certificate chains: signature rules, hash chain and policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opseal.crypto.certs import Certificate, Revocation, verify_device_chain
from opseal.crypto.charter import AreaPolicy, Charter, Member, verify_charter_chain
from opseal.crypto.errors import CertificateError, CharterError, DecodeError, PolicyError
from opseal.crypto.keys import SigningKey

from .conftest import NOW


def pinned(world):
    return world.roots["wco"].verify_key.key_id


def test_charter_chain_verifies_from_the_pinned_coordinator(world):
    """Version 1 and a coordinator-signed version 2 verify from the pinned root."""
    v1 = world.charter
    lead = world.user("wco", "ocu-lead")
    v2 = v1.next_version(issued_at=NOW, name="Operation STOP V (extended)").signed(
        lead.key, lead.cert
    )
    assert verify_charter_chain([v1, v2], pinned_root_key_id=pinned(world), now=NOW) == v2
    assert Charter.from_bytes(v2.to_bytes()) == v2
    assert v2.previous_hash == v1.hash


def test_charter_signed_by_another_root_than_the_pinned_one_is_refused(world):
    """A joiner who pinned the real coordinator refuses a charter from an impostor."""
    with pytest.raises(CharterError, match="pinned coordinator"):
        verify_charter_chain(
            [world.charter], pinned_root_key_id=SigningKey.generate().verify_key.key_id, now=NOW
        )


def test_new_version_must_be_signed_by_a_coordinator_of_the_previous_one(world):
    """A customs user cannot publish a version, even one that makes its organisation coordinator."""
    officer = world.user("fr-customs", "marie")
    promoted = [
        replace(m, role="coordinator") if m.organisation_id == "fr-customs" else m
        for m in world.charter.members
    ]
    v2 = world.charter.next_version(issued_at=NOW, members=promoted).signed(
        officer.key, officer.cert
    )
    with pytest.raises(CharterError, match="is not a coordinator"):
        verify_charter_chain([world.charter, v2], pinned_root_key_id=pinned(world), now=NOW)


def test_charter_versions_must_extend_the_hash_chain(world):
    """A version pointing at another predecessor, or skipping a number, is refused."""
    lead = world.user("wco", "ocu-lead")
    v2 = world.charter.next_version(issued_at=NOW)
    broken = replace(v2, previous_hash=bytes(range(32))).signed(lead.key, lead.cert)
    with pytest.raises(CharterError, match="does not extend the chain"):
        verify_charter_chain([world.charter, broken], pinned_root_key_id=pinned(world), now=NOW)
    skipped = replace(v2, version=3).signed(lead.key, lead.cert)
    with pytest.raises(CharterError, match="expected charter version 2"):
        verify_charter_chain([world.charter, skipped], pinned_root_key_id=pinned(world), now=NOW)


def test_tampered_charter_signature_is_refused(world):
    """Changing an area's audience after signing breaks the coordinator's signature."""
    areas = [
        replace(a, read_roles=a.read_roles | {"stakeholder"}) if a.name == "seizures" else a
        for a in world.charter.areas
    ]
    forged = replace(world.charter, areas=tuple(areas))
    with pytest.raises(CharterError, match="does not verify"):
        verify_charter_chain([forged], pinned_root_key_id=pinned(world), now=NOW)


def test_charter_policy_answers_who_may_read_post_admit_and_remove(world):
    """The policy queries follow the roles and areas of the charter."""
    c = world.charter
    assert c.may_read("customs", "plan")
    assert not c.may_post("customs", "plan")
    assert not c.may_read("stakeholder", "seizures")
    assert c.may_post("stakeholder", "stakeholders")
    assert c.may_read("observer", "stakeholders")
    assert not c.may_post("observer", "stakeholders")
    c.check_may_admit("wco", "fr-customs", "seizures")
    c.check_may_admit("fr-customs", "fr-customs", "seizures")
    with pytest.raises(PolicyError):
        c.check_may_admit("de-customs", "fr-customs", "seizures")
    with pytest.raises(PolicyError):
        c.check_may_admit("wco", "brandx", "plan")
    c.check_may_remove("wco", "brandx")
    with pytest.raises(PolicyError):
        c.check_may_remove("brandx", "fr-customs")
    with pytest.raises(PolicyError, match="not a member"):
        c.role_of("nowhere")
    with pytest.raises(PolicyError, match="no area"):
        c.area("nowhere")


def test_charter_rules_are_checked_at_construction(world):
    """Observers may not post, posters must read, and a coordinator must exist."""
    with pytest.raises(DecodeError, match="observers are read-only"):
        AreaPolicy("x", frozenset({"coordinator", "observer"}), frozenset({"observer"}))
    with pytest.raises(DecodeError, match="cannot read"):
        AreaPolicy("x", frozenset({"coordinator"}), frozenset({"customs"}))
    members = [m for m in world.members() if m.role != "coordinator"]
    with pytest.raises(DecodeError, match="coordinator"):
        Charter.create(
            operation_id="op", code="X", name="X", starts_at=NOW, ends_at=NOW, members=members,
            areas=[], issued_at=NOW,
        )  # fmt: skip
    with pytest.raises(DecodeError, match="role"):
        Member("org", "Org", "kind", "admin", SigningKey.generate().verify_key)


def test_device_chain_verifies_and_round_trips(world):
    """A device chains to its organisation root, and certificates survive encoding."""
    device = world.device("fr-customs", "marie", "fr-marie-1")
    root = world.roots["fr-customs"].verify_key
    verify_device_chain(
        device.device_cert, device.user_cert, root, organisation_id="fr-customs", now=NOW
    )
    assert Certificate.from_bytes(device.device_cert.to_bytes()) == device.device_cert
    with pytest.raises(CertificateError, match="another organisation"):
        verify_device_chain(
            device.device_cert, device.user_cert, root, organisation_id="de-customs", now=NOW
        )
    with pytest.raises(CertificateError, match="names another issuer"):
        verify_device_chain(
            device.device_cert, device.user_cert, world.roots["de-customs"].verify_key,
            organisation_id="fr-customs", now=NOW,
        )  # fmt: skip


def test_revocation_by_user_key_or_root_verifies_and_forgeries_do_not(world):
    """A user may revoke its own device; a stranger's revocation is refused."""
    device = world.device("fr-customs", "marie", "fr-marie-1")
    marie = world.user("fr-customs", "marie")
    root = world.roots["fr-customs"].verify_key
    own = Revocation.issue(
        marie.key, organisation_id="fr-customs", subject_id="fr-marie-1",
        revoked_key=device.signing_key.verify_key, reason="lost", revoked_at=NOW,
    )  # fmt: skip
    own.verify(root, device.device_cert, user_cert=marie.cert)
    assert Revocation.from_bytes(own.to_bytes()) == own
    stranger = Revocation.issue(
        SigningKey.generate(), organisation_id="fr-customs", subject_id="fr-marie-1",
        revoked_key=device.signing_key.verify_key, reason="x", revoked_at=NOW,
    )  # fmt: skip
    with pytest.raises(CertificateError, match="not signed by an authority"):
        stranger.verify(root, device.device_cert, user_cert=marie.cert)


def test_another_organisations_root_cannot_revoke(world):
    """INTERPOL's root key cannot revoke a French device, even naming French Customs."""
    device = world.device("fr-customs", "marie", "fr-marie-1")
    forged = Revocation.issue(
        world.roots["interpol"], organisation_id="fr-customs", subject_id="fr-marie-1",
        revoked_key=device.signing_key.verify_key, reason="x", revoked_at=NOW,
    )  # fmt: skip
    with pytest.raises(CertificateError, match="not signed by an authority"):
        forged.verify(world.roots["fr-customs"].verify_key, device.device_cert)
    # Checked against INTERPOL's own root, it names a key INTERPOL does not own.
    with pytest.raises(CertificateError, match="does not name this certificate"):
        forged.verify(world.roots["interpol"].verify_key, world.user("interpol", "x").cert)


def test_a_user_revokes_only_its_own_devices(world):
    """Pierre's identity key cannot revoke Marie's device."""
    device = world.device("fr-customs", "marie", "fr-marie-1")
    pierre = world.user("fr-customs", "pierre")
    forged = Revocation.issue(
        pierre.key, organisation_id="fr-customs", subject_id="fr-marie-1",
        revoked_key=device.signing_key.verify_key, reason="x", revoked_at=NOW,
    )  # fmt: skip
    with pytest.raises(CertificateError, match="only its own devices"):
        forged.verify(
            world.roots["fr-customs"].verify_key, device.device_cert, user_cert=pierre.cert
        )


def test_charter_version_signed_by_a_revoked_coordinator_is_refused(world):
    """A coordinator whose identity key was revoked cannot publish a version."""
    lead = world.user("wco", "ocu-lead")
    v2 = world.charter.next_version(issued_at=NOW).signed(lead.key, lead.cert)
    with pytest.raises(CharterError, match="revoked"):
        verify_charter_chain(
            [world.charter, v2], pinned_root_key_id=pinned(world), now=NOW,
            revoked={lead.key.verify_key.key_id},
        )  # fmt: skip
