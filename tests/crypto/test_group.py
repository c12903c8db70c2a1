"""Area groups: creation, admission, removal, key updates and every refusal of design §4."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opseal.crypto.certs import Revocation, issue_device_certificate
from opseal.crypto.errors import (
    CertificateError,
    CommitError,
    CryptoError,
    EpochError,
    PolicyError,
    SignatureError,
)
from opseal.crypto.group import (
    Commit,
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
    open_epoch_secret,
    open_history,
)
from opseal.crypto.keys import HpkePrivateKey, SigningKey

from .conftest import INSTANCE, NOW, YEAR


def package(world, identity, area):
    return KeyPackage.create(identity, operation_id=world.charter.operation_id, area=area, now=NOW)


@pytest.fixture
def coordinator(world):
    return world.device("wco", "ocu-lead", "wco-laptop")


@pytest.fixture
def seizures(world, coordinator):
    """The 'seizures' area created by the coordinator with one French officer."""
    fr = world.device("fr-customs", "marie", "fr-marie-1")
    commit, state, secret = create_area(
        world.charter, coordinator, instance_id=INSTANCE, area="seizures", now=NOW,
        adds=[package(world, fr, "seizures")],
    )  # fmt: skip
    return commit, state, secret, fr


def test_creation_validates_for_every_member_and_shares_one_secret(world, coordinator, seizures):
    """Every member validates the creating commit and opens the same epoch secret."""
    commit, state, secret, fr = seizures
    received = apply_commit(
        None, Commit.from_bytes(commit.to_bytes()), world.charter, now=NOW, instance_id=INSTANCE
    )
    assert received == state
    assert received.epoch == 0
    assert [e.device_id for e in received.roster] == ["fr-marie-1", "wco-laptop"]
    assert open_epoch_secret(commit, received, fr) == secret
    assert open_epoch_secret(commit, received, coordinator) == secret


def test_only_a_coordinator_creates_an_area(world):
    """A customs device cannot create an area."""
    fr = world.device("fr-customs", "marie", "fr-marie-1")
    with pytest.raises(PolicyError, match="only a coordinator"):
        create_area(world.charter, fr, instance_id=INSTANCE, area="seizures", now=NOW)


def test_commit_by_device_the_charter_does_not_allow_is_refused(world, coordinator, seizures):
    """A French officer may not admit a German device; a non-member may not commit at all."""
    _, state, _, fr = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    with pytest.raises(PolicyError, match="may not admit devices of 'de-customs'"):
        create_commit(state, world.charter, fr, now=NOW, adds=[package(world, de, "seizures")])
    # A commit built by the coordinator but signed by an outsider's device is refused too.
    good, _, _ = create_commit(
        state, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")]
    )
    outsider = world.device("de-customs", "hans", "de-hans-2")
    forged = replace(good, committer="de-hans-2")
    forged = replace(forged, signature=outsider.signing_key.sign(forged.to_be_signed()))
    with pytest.raises(PolicyError, match="not a member and may not commit"):
        apply_commit(state, forged, world.charter, now=NOW)


def test_stakeholder_may_not_remove_customs_devices(world, coordinator):
    """A stakeholder in the stakeholder area cannot remove another organisation's device."""
    brand = world.device("brandx", "alice", "brandx-1")
    fr = world.device("fr-customs", "marie", "fr-marie-1")
    _, state, _ = create_area(
        world.charter, coordinator, instance_id=INSTANCE, area="stakeholders", now=NOW,
        adds=[package(world, brand, "stakeholders"), package(world, fr, "stakeholders")],
    )  # fmt: skip
    with pytest.raises(PolicyError, match="may not remove devices of 'fr-customs'"):
        create_commit(state, world.charter, brand, now=NOW, removes=["fr-marie-1"])


def test_added_device_not_chaining_to_a_charter_root_is_refused(world, coordinator, seizures):
    """A device whose user was certified by a rogue root posing as French Customs is refused."""
    _, state, _, _ = seizures
    rogue = world.device("fr-customs", "marie", "fr-marie-1")  # real chain, to copy the shape
    rogue_root = SigningKey.generate()
    from opseal.crypto.certs import issue_user_certificate

    user_key = SigningKey.generate()
    user_cert = issue_user_certificate(
        rogue_root, organisation_id="fr-customs", user_id="mallory", user_kind="person",
        name="Mallory", identity_key=user_key.verify_key, issued_at=NOW - 10,
        expires_at=NOW + YEAR,
    )  # fmt: skip
    signing, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    device_cert = issue_device_certificate(
        user_key, user_cert, device_id="fr-mallory", name="x", signing_key=signing.verify_key,
        hpke_key=hpke.public_key, issued_at=NOW - 10, expires_at=NOW + YEAR,
    )  # fmt: skip
    impostor = DeviceIdentity(user_cert, device_cert, signing, hpke)
    assert rogue.device_id != impostor.device_id
    with pytest.raises(CertificateError, match="names another issuer"):
        create_commit(
            state, world.charter, coordinator, now=NOW, adds=[package(world, impostor, "seizures")]
        )


def test_device_certified_by_another_users_key_is_refused(world, coordinator, seizures):
    """A device certificate for Marie that Pierre's key signed does not chain to Marie."""
    _, state, _, _ = seizures
    marie, pierre = world.user("fr-customs", "marie"), world.user("fr-customs", "pierre")
    signing, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    # Pierre certifies a device and claims it is Marie's.
    forged = issue_device_certificate(
        pierre.key, pierre.cert, device_id="fr-marie-9", name="x",
        signing_key=signing.verify_key, hpke_key=hpke.public_key,
        issued_at=NOW - 10, expires_at=NOW + YEAR,
    )  # fmt: skip
    forged = replace(forged, user_id="marie")
    forged = replace(forged, signature=pierre.key.sign(forged.to_be_signed()))
    device = DeviceIdentity(marie.cert, forged, signing, hpke)
    with pytest.raises(CertificateError, match="names another issuer"):
        create_commit(
            state, world.charter, coordinator, now=NOW, adds=[package(world, device, "seizures")]
        )


def test_stakeholder_device_added_to_a_customs_only_area_is_refused(world, coordinator, seizures):
    """Not even a coordinator can admit a rights holder's device into 'seizures'."""
    _, state, _, _ = seizures
    brand = world.device("brandx", "alice", "brandx-1")
    with pytest.raises(PolicyError, match="role 'stakeholder' may not read area 'seizures'"):
        create_commit(
            state, world.charter, coordinator, now=NOW, adds=[package(world, brand, "seizures")]
        )


def test_commit_smuggling_a_stakeholder_is_refused_by_receivers(world, coordinator, seizures):
    """A commit that skips the committer's own checks is still refused by every receiver."""
    _, state, _, _ = seizures
    brand = world.device("brandx", "alice", "brandx-1")
    de = world.device("de-customs", "hans", "de-hans-1")
    good, _, _ = create_commit(
        state, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")]
    )
    smuggled = replace(good, adds=(package(world, brand, "seizures"),))
    smuggled = replace(smuggled, signature=coordinator.signing_key.sign(smuggled.to_be_signed()))
    with pytest.raises(PolicyError, match="may not read area 'seizures'"):
        apply_commit(state, smuggled, world.charter, now=NOW)


def test_commit_for_an_epoch_that_is_not_current_plus_one_is_refused(world, coordinator, seizures):
    """Replaying, rolling back or skipping epochs raises EpochError."""
    create, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    c1, state1, _ = create_commit(
        state0, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")]
    )
    c2, state2, _ = create_commit(state1, world.charter, coordinator, now=NOW)
    assert apply_commit(state0, c1, world.charter, now=NOW) == state1
    with pytest.raises(EpochError, match="commit for epoch 1; expected epoch 2"):
        apply_commit(state1, c1, world.charter, now=NOW)  # replay
    with pytest.raises(EpochError, match="commit for epoch 0; expected epoch 3"):
        apply_commit(state2, create, world.charter, now=NOW)  # rollback to creation
    with pytest.raises(EpochError, match="commit for epoch 2; expected epoch 1"):
        apply_commit(state0, c2, world.charter, now=NOW)  # skip


def test_commit_on_a_forked_state_is_refused(world, coordinator, seizures):
    """A commit built on another epoch-1 state does not apply to ours."""
    _, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    _, ours, _ = create_commit(state0, world.charter, coordinator, now=NOW)
    _, theirs, _ = create_commit(
        state0, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")]
    )
    fork, _, _ = create_commit(theirs, world.charter, coordinator, now=NOW)
    with pytest.raises(CommitError, match="does not follow the current state"):
        apply_commit(ours, fork, world.charter, now=NOW)


def test_removed_member_cannot_open_the_next_epoch(world, coordinator, seizures):
    """After removal, the new epoch secret is sealed only to the remaining devices."""
    _, state0, secret0, fr = seizures
    commit, state1, secret1 = create_commit(
        state0, world.charter, coordinator, now=NOW, removes=["fr-marie-1"]
    )
    assert apply_commit(state0, commit, world.charter, now=NOW) == state1
    assert state1.member("fr-marie-1") is None
    assert "fr-marie-1" not in [s.device_id for s in commit.sealed]
    with pytest.raises(CommitError, match="not a member of this epoch"):
        open_epoch_secret(commit, state1, fr)
    assert secret1 != secret0
    assert open_epoch_secret(commit, state1, coordinator) == secret1


def test_tampered_commit_bytes_are_refused(world, coordinator, seizures):
    """Any flipped bit in a commit's signed bytes or signature makes receivers refuse it."""
    _, state0, _, _ = seizures
    commit, _, _ = create_commit(state0, world.charter, coordinator, now=NOW)
    data = commit.to_bytes()
    for position in range(0, len(data), max(1, len(data) // 300)):
        flipped = bytearray(data)
        flipped[position] ^= 0x04
        with pytest.raises(CryptoError):
            apply_commit(state0, Commit.from_bytes(bytes(flipped)), world.charter, now=NOW)


def test_roster_hash_and_recipients_must_match_the_proposals(world, coordinator, seizures):
    """A signed commit whose roster hash or recipient list lies is refused."""
    _, state0, _, _ = seizures
    commit, _, _ = create_commit(state0, world.charter, coordinator, now=NOW)

    def resign(c):
        return replace(c, signature=coordinator.signing_key.sign(c.to_be_signed()))

    with pytest.raises(CommitError, match="roster hash"):
        apply_commit(state0, resign(replace(commit, roster_hash=bytes(32))), world.charter, now=NOW)
    with pytest.raises(CommitError, match="sealed to every member"):
        apply_commit(
            state0, resign(replace(commit, sealed=commit.sealed[:1])), world.charter, now=NOW
        )


def test_a_member_given_a_different_secret_detects_it(world, coordinator, seizures):
    """The confirmation tag exposes a committer that seals different secrets to members."""
    _, state0, _, fr = seizures
    commit, _state1, _ = create_commit(state0, world.charter, coordinator, now=NOW)
    other, _, _ = create_commit(state0, world.charter, coordinator, now=NOW)
    mixed = tuple(
        o if s.device_id == "fr-marie-1" else s
        for s, o in zip(commit.sealed, other.sealed, strict=True)
    )
    bad = replace(commit, sealed=mixed)
    bad = replace(bad, signature=coordinator.signing_key.sign(bad.to_be_signed()))
    state = apply_commit(state0, bad, world.charter, now=NOW)
    with pytest.raises(CommitError, match="confirmation"):
        open_epoch_secret(bad, state, fr)


def test_shared_area_seals_history_to_newcomers(world, coordinator):
    """A late-joining administration can read the Operational Plan's earlier epochs."""
    _, s0, k0 = create_area(world.charter, coordinator, instance_id=INSTANCE, area="plan", now=NOW)
    _, s1, k1 = create_commit(s0, world.charter, coordinator, now=NOW)
    de = world.device("de-customs", "hans", "de-hans-1")
    commit, _s2, k2 = create_commit(
        s1, world.charter, coordinator, now=NOW, adds=[package(world, de, "plan")],
        history={0: k0, 1: k1},
    )  # fmt: skip
    received = apply_commit(s1, commit, world.charter, now=NOW)
    assert open_epoch_secret(commit, received, de) == k2
    assert open_history(commit, received, de) == {0: k0, 1: k1}


def test_since_join_area_refuses_history(world, coordinator, seizures):
    """A 'since-join' area never seals past secrets to newcomers."""
    _, state0, secret0, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    commit, _, _ = create_commit(
        state0, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")],
        history={0: secret0},
    )  # fmt: skip
    assert commit.history == ()
    forged = replace(commit, history=(replace(commit.sealed[0], device_id="de-hans-1"),))
    forged = replace(forged, signature=coordinator.signing_key.sign(forged.to_be_signed()))
    with pytest.raises(CommitError, match="does not share history"):
        apply_commit(state0, forged, world.charter, now=NOW)


def test_device_updates_its_own_keys(world, coordinator, seizures):
    """A member rotates its keys; the next epoch secret is sealed to the new HPKE key."""
    _, state0, _, fr = seizures
    fresh = world.device("fr-customs", "marie", "fr-marie-1")
    commit, state1, secret = create_commit(state0, world.charter, fr, now=NOW, update=fresh)
    assert apply_commit(state0, commit, world.charter, now=NOW) == state1
    assert state1.member("fr-marie-1").signing_key == fresh.signing_key.verify_key
    assert open_epoch_secret(commit, state1, fresh) == secret
    with pytest.raises(CommitError):
        open_epoch_secret(commit, state1, fr)


def test_init_key_update_rotates_and_refuses_a_reused_key(world, coordinator, seizures):
    """An update commit seals the next secret to the committer's fresh init key (read back
    through the second key-package encoding); its long-term key and an old init key open
    nothing, and an update that keeps the current init key is refused."""
    _, state0, _, fr = seizures
    old, new = HpkePrivateKey.generate(), HpkePrivateKey.generate()
    commit, state1, _ = create_commit(state0, world.charter, fr, now=NOW, init_key=old.public_key)
    commit, state2, secret = create_commit(
        state1, world.charter, fr, now=NOW, init_key=new.public_key
    )
    received = Commit.from_bytes(commit.to_bytes())
    assert received.update is not None
    assert received.update.init_key == new.public_key
    assert apply_commit(state1, received, world.charter, now=NOW) == state2
    assert open_epoch_secret(received, state2, fr, [old, new]) == secret
    for keys in ([], [old]):
        with pytest.raises(CommitError, match="not one it holds"):
            open_epoch_secret(received, state2, fr, keys)
    with pytest.raises(CommitError, match="new init key"):  # the rule apply_commit runs
        create_commit(state2, world.charter, fr, now=NOW, init_key=new.public_key)


def test_revoked_device_is_refused(world, coordinator, seizures):
    """A device whose key its organisation revoked cannot be admitted."""
    _, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    revocation = Revocation.issue(
        world.roots["de-customs"], organisation_id="de-customs", subject_id="de-hans-1",
        revoked_key=de.signing_key.verify_key, reason="laptop stolen", revoked_at=NOW,
    )  # fmt: skip
    revocation.verify(world.roots["de-customs"].verify_key, de.device_cert)
    with pytest.raises(CertificateError, match="has been revoked"):
        create_commit(
            state0, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")],
            revoked={revocation.revoked_key_id},
        )  # fmt: skip


def test_expired_certificate_is_refused(world, coordinator, seizures):
    """A device certificate past its expiry cannot join."""
    _, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    with pytest.raises(CertificateError, match="is not valid at"):
        create_commit(
            state0, world.charter, coordinator, now=NOW + 2 * YEAR,
            adds=[package(world, de, "seizures")],
        )  # fmt: skip


def test_service_account_has_one_device(world, coordinator, seizures):
    """A national system's service account may not have a second device in an area."""
    _, state0, _, _ = seizures
    a = world.device("de-customs", "ncen", "de-ncen-1", kind="service")
    b = world.device("de-customs", "ncen", "de-ncen-2", kind="service")
    with pytest.raises(CommitError, match="only one device"):
        create_commit(
            state0, world.charter, coordinator, now=NOW,
            adds=[package(world, a, "seizures"), package(world, b, "seizures")],
        )  # fmt: skip


def test_key_package_signature_is_checked(world, coordinator, seizures):
    """A key package re-signed by another key is refused."""
    _, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    kp = package(world, de, "seizures")
    kp = replace(kp, signature=SigningKey.generate().sign(kp.to_be_signed()))
    with pytest.raises(SignatureError, match="key package"):
        create_commit(state0, world.charter, coordinator, now=NOW, adds=[kp])


def test_group_state_round_trips(seizures):
    """A group state survives its encoding unchanged (clients store it)."""
    _, state, _, _ = seizures
    assert GroupState.from_bytes(state.to_bytes()) == state
    assert GroupState.from_bytes(state.to_bytes()).hash == state.hash


def test_revoked_committer_is_refused(world, coordinator, seizures):
    """A stolen device whose key was revoked can no longer commit."""
    _, state0, _, fr = seizures
    commit, _, _ = create_commit(state0, world.charter, fr, now=NOW)
    revoked = {fr.signing_key.verify_key.key_id}
    with pytest.raises(CertificateError, match="committer 'fr-marie-1' has been revoked"):
        apply_commit(state0, commit, world.charter, now=NOW, revoked=revoked)
    # The coordinator must remove the revoked device before anything else.
    with pytest.raises(CommitError, match="is revoked and must be removed"):
        create_commit(state0, world.charter, coordinator, now=NOW, revoked=revoked)
    removal, state1, _ = create_commit(
        state0, world.charter, coordinator, now=NOW, removes=["fr-marie-1"], revoked=revoked
    )
    assert apply_commit(state0, removal, world.charter, now=NOW, revoked=revoked) == state1


def test_key_update_cannot_change_the_organisation(world, coordinator, seizures):
    """A device cannot move itself into another organisation through a key update."""
    _, state0, _, fr = seizures
    impostor = world.device("de-customs", "marie", "fr-marie-1")
    with pytest.raises(CommitError, match="keep the device's organisation and user"):
        create_commit(state0, world.charter, fr, now=NOW, update=impostor)


def test_commit_cannot_remove_and_readd_a_device(world, coordinator, seizures):
    """Removing and re-adding one device id in a single commit is refused."""
    _, state0, _, _ = seizures
    other = world.device("fr-customs", "pierre", "fr-marie-1")
    with pytest.raises(CommitError, match="remove and add the same device"):
        create_commit(
            state0, world.charter, coordinator, now=NOW, removes=["fr-marie-1"],
            adds=[package(world, other, "seizures")],
        )  # fmt: skip


def test_first_commit_without_its_creator_is_refused(world, coordinator, seizures):
    """A creation commit whose committer is not among its adds raises CommitError."""
    create, _, _, _ = seizures
    forged = replace(create, committer="someone-else")
    with pytest.raises(CommitError, match="must add its creator"):
        apply_commit(None, forged, world.charter, now=NOW, instance_id=INSTANCE)


def test_late_member_validates_with_the_commits_date(world, coordinator, seizures):
    """A member syncing after a certificate expired still accepts a commit made before."""
    _, state0, _, _ = seizures
    de = world.device("de-customs", "hans", "de-hans-1")
    commit, state1, _ = create_commit(
        state0, world.charter, coordinator, now=NOW, adds=[package(world, de, "seizures")]
    )
    assert apply_commit(state0, commit, world.charter, now=NOW + 2 * YEAR) == state1
    with pytest.raises(CommitError, match="dated in the future"):
        apply_commit(state0, commit, world.charter, now=NOW - 3600)
