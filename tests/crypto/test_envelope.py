"""Message envelopes: sealing, opening and every refusal of design §5."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from opseal.crypto.envelope import (
    CheckedSignature,
    Envelope,
    Header,
    ReplayTracker,
    _epoch_key,
    forget_epoch_keys,
    open_envelope,
    seal,
)
from opseal.crypto.errors import (
    ContextError,
    CryptoError,
    DecodeError,
    DecryptionError,
    EnvelopeError,
    ForkError,
    PolicyError,
    ReplayError,
    SignatureError,
)
from opseal.crypto.group import (
    KeyPackage,
    create_area,
    create_commit,
    epoch_authenticator,
    open_epoch_secret,
)

from .conftest import INSTANCE, NOW

TEXT = b'{"text": "Seizure at CDG: 1,200 fake medicines"}'


def join(world, identity, area):
    return KeyPackage.create(identity, operation_id=world.charter.operation_id, area=area, now=NOW)


@pytest.fixture
def area(world):
    """'seizures' with the coordinator, a French officer and a German officer, epoch 0."""
    coordinator = world.device("wco", "ocu-lead", "wco-laptop")
    fr = world.device("fr-customs", "marie", "fr-marie-1")
    de = world.device("de-customs", "hans", "de-hans-1")
    _commit, state, secret = create_area(
        world.charter, coordinator, instance_id=INSTANCE, area="seizures", now=NOW,
        adds=[join(world, fr, "seizures"), join(world, de, "seizures")],
    )  # fmt: skip
    return state, secret, coordinator, fr, de


def header(state, sender, counter=1, **changes):
    fields = dict(
        instance_id=state.instance_id, operation_id=state.operation_id, area=state.area,
        epoch=state.epoch, sender=sender, counter=counter, message_id=uuid.uuid4(),
        content_type="seizure", handling="H1", requires_ack=False, client_time_ms=NOW * 1000,
    )  # fmt: skip
    fields.update(changes)
    return Header(**fields)


def test_member_opens_what_another_member_sealed(area):
    """A German officer reads a French seizure report; the wire bytes round-trip."""
    state, secret, _, fr, _ = area
    envelope = seal(header(state, fr.device_id), TEXT, secret, fr.signing_key)
    received = Envelope.from_bytes(envelope.to_bytes())
    assert received == envelope
    assert (
        open_envelope(received, state=state, epoch_secret=secret, tracker=ReplayTracker()) == TEXT
    )
    assert TEXT not in envelope.to_bytes()


def test_epoch_keys_cached_for_a_sync_are_forgotten_on_request(area):
    """The extract step of an epoch secret is cached while messages are opened, and
    ``forget_epoch_keys`` (called when secrets are deleted and when a client closes) leaves no
    secret in that cache; a message still opens afterwards."""
    state, secret, _, fr, _ = area
    envelope = seal(header(state, fr.device_id), TEXT, secret, fr.signing_key)
    open_envelope(envelope, state=state, epoch_secret=secret)
    assert _epoch_key.cache_info().currsize >= 1
    forget_epoch_keys()
    assert _epoch_key.cache_info().currsize == 0
    assert open_envelope(envelope, state=state, epoch_secret=secret) == TEXT


def test_replayed_envelope_is_refused(area):
    """The same sender and counter is accepted once."""
    state, secret, _, fr, _ = area
    tracker = ReplayTracker()
    envelope = seal(header(state, fr.device_id, counter=1), TEXT, secret, fr.signing_key)
    open_envelope(envelope, state=state, epoch_secret=secret, tracker=tracker)
    with pytest.raises(ReplayError, match="already seen"):
        open_envelope(envelope, state=state, epoch_secret=secret, tracker=tracker)
    # A new message id with a reused counter is a replay as well.
    again = seal(header(state, fr.device_id, counter=1), TEXT, secret, fr.signing_key)
    with pytest.raises(ReplayError):
        open_envelope(again, state=state, epoch_secret=secret, tracker=tracker)


def test_gaps_are_reported_until_late_messages_arrive(area):
    """Skipped counters are shown as possibly missing, and each may arrive late once."""
    state, secret, _, fr, _ = area
    tracker = ReplayTracker()
    sealed = {
        n: seal(header(state, fr.device_id, n), TEXT, secret, fr.signing_key) for n in (1, 4, 2)
    }
    for n in (1, 4):
        open_envelope(sealed[n], state=state, epoch_secret=secret, tracker=tracker)
    assert tracker.gaps(state.operation_id, "seizures", fr.device_id) == [2, 3]
    open_envelope(sealed[2], state=state, epoch_secret=secret, tracker=tracker)
    assert tracker.gaps(state.operation_id, "seizures", fr.device_id) == [3]
    with pytest.raises(ReplayError):
        open_envelope(sealed[2], state=state, epoch_secret=secret, tracker=tracker)
    restored = ReplayTracker()
    for row in tracker:
        restored.restore(*row)
    assert restored.gaps(state.operation_id, "seizures", fr.device_id) == [3]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("area", "plan", "received in area 'seizures'"),
        ("operation_id", "op-other", "another operation"),
        ("instance_id", "other-instance", "another instance"),
        ("epoch", 7, "opened in epoch 0"),
    ],
)
def test_envelope_moved_to_another_area_epoch_or_operation_is_refused(area, field, value, message):
    """An envelope sealed for elsewhere is refused when presented here."""
    state, secret, _, fr, _ = area
    moved = seal(header(state, fr.device_id, **{field: value}), TEXT, secret, fr.signing_key)
    with pytest.raises(ContextError, match=message):
        open_envelope(moved, state=state, epoch_secret=secret)


def test_header_rewritten_by_the_server_is_refused(area):
    """Changing any header field after sealing breaks the signature."""
    state, secret, _, fr, _ = area
    envelope = seal(header(state, fr.device_id), TEXT, secret, fr.signing_key)
    for change in ({"requires_ack": True}, {"handling": "H0"}, {"counter": 9}):
        forged = replace(envelope, header=replace(envelope.header, **change))
        with pytest.raises(SignatureError):
            open_envelope(forged, state=state, epoch_secret=secret)


def test_an_envelope_read_from_the_wire_and_then_changed_is_refused(area):
    """Verification reuses the signed bytes as received; a copy with another header or
    ciphertext (dataclasses.replace) is checked on what it holds, not on those bytes."""
    state, secret, _, fr, _ = area
    sealed = seal(header(state, fr.device_id), TEXT, secret, fr.signing_key)
    received = Envelope.from_bytes(sealed.to_bytes())
    assert received.to_bytes() == sealed.to_bytes()
    assert open_envelope(received, state=state, epoch_secret=secret) == TEXT
    other = seal(header(state, fr.device_id, counter=2), b"other", secret, fr.signing_key)
    for forged in (
        replace(received, ciphertext=other.ciphertext),
        replace(received, header=replace(received.header, handling="H0")),
    ):
        with pytest.raises(SignatureError):
            open_envelope(forged, state=state, epoch_secret=secret)


def test_a_signature_checked_elsewhere_spares_only_its_own_envelope(area):
    """A signature verified ahead (the sync's worker) spares the check only for the very
    envelope, bytes and sender key it was verified over: given with a forged envelope of the
    same sender, or under another key, the signature is checked and refused."""
    state, secret, _, fr, de = area
    sealed = Envelope.from_bytes(
        seal(header(state, fr.device_id), TEXT, secret, fr.signing_key).to_bytes()
    )
    checked = CheckedSignature(
        fr.signing_key.verify_key.raw, sealed.signature, sealed.to_be_signed()
    )
    assert open_envelope(sealed, state=state, epoch_secret=secret, signed_by=checked) == TEXT
    other = seal(header(state, fr.device_id, counter=2), b"other", secret, fr.signing_key)
    forged = Envelope(sealed.header, other.ciphertext, sealed.signature)
    with pytest.raises(SignatureError):
        open_envelope(forged, state=state, epoch_secret=secret, signed_by=checked)
    wrong_key = replace(checked, key=de.signing_key.verify_key.raw)
    wire = sealed.to_bytes()
    tampered = Envelope.from_bytes(wire[:-1] + bytes([wire[-1] ^ 1]))  # always another byte
    with pytest.raises(SignatureError):
        open_envelope(tampered, state=state, epoch_secret=secret, signed_by=wrong_key)


def test_any_flipped_bit_in_header_ciphertext_or_signature_is_refused(area):
    """Every single-bit change of the wire bytes is refused with a CryptoError."""
    state, secret, _, fr, _ = area
    data = seal(header(state, fr.device_id), b"x" * 64, secret, fr.signing_key).to_bytes()
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CryptoError):
            open_envelope(Envelope.from_bytes(bytes(flipped)), state=state, epoch_secret=secret)


def test_removed_member_cannot_open_a_message_of_the_next_epoch(world, area):
    """After the German device is removed it holds no secret that opens epoch 1."""
    state0, secret0, coordinator, fr, de = area
    commit, state1, secret1 = create_commit(
        state0, world.charter, coordinator, now=NOW, removes=[de.device_id]
    )
    envelope = seal(header(state1, fr.device_id), TEXT, secret1, fr.signing_key)
    with pytest.raises(CryptoError):
        open_epoch_secret(commit, state1, de)
    # The removed device only has epoch 0's secret and state.
    with pytest.raises(ContextError):
        open_envelope(envelope, state=state0, epoch_secret=secret0)
    with pytest.raises(DecryptionError):
        open_envelope(envelope, state=state1, epoch_secret=secret0)
    assert open_envelope(envelope, state=state1, epoch_secret=secret1) == TEXT


def test_message_from_removed_member_is_refused(world, area):
    """A removed device's envelope for the new epoch is refused as an unknown sender."""
    state0, _, coordinator, _, de = area
    _, state1, secret1 = create_commit(
        state0, world.charter, coordinator, now=NOW, removes=[de.device_id]
    )
    envelope = seal(header(state1, de.device_id), TEXT, secret1, de.signing_key)
    with pytest.raises(EnvelopeError, match="not a member of epoch 1"):
        open_envelope(envelope, state=state1, epoch_secret=secret1)


def test_observer_posts_are_refused(world):
    """A read-only observer's envelope is refused by readers who check the charter."""
    coordinator = world.device("wco", "ocu-lead", "wco-laptop")
    auditor = world.device("auditor-org", "olga", "audit-1")
    _, state, secret = create_area(
        world.charter, coordinator, instance_id=INSTANCE, area="stakeholders", now=NOW,
        adds=[join(world, auditor, "stakeholders")],
    )  # fmt: skip
    envelope = seal(
        header(state, auditor.device_id, content_type="text"), TEXT, secret, auditor.signing_key
    )
    with pytest.raises(PolicyError, match="may not post"):
        open_envelope(envelope, state=state, epoch_secret=secret, charter=world.charter)


def test_header_fields_are_validated(area):
    """Unknown content types, handling codes and zero counters are refused at construction."""
    state, _, _, fr, _ = area
    with pytest.raises(DecodeError, match="content type"):
        header(state, fr.device_id, content_type="exe")
    with pytest.raises(DecodeError, match="handling code"):
        header(state, fr.device_id, handling="H9")
    with pytest.raises(DecodeError, match="counters start at 1"):
        header(state, fr.device_id, counter=0)


def test_counter_jump_beyond_the_gap_limit_is_refused(area):
    """A sender cannot make readers track millions of missing counters."""
    state, secret, _, fr, _ = area
    tracker = ReplayTracker()
    huge = seal(header(state, fr.device_id, counter=2**40), TEXT, secret, fr.signing_key)
    with pytest.raises(EnvelopeError, match="jumps by more than"):
        open_envelope(huge, state=state, epoch_secret=secret, tracker=tracker)
    assert tracker.gaps(state.operation_id, "seizures", fr.device_id) == []


def test_same_area_name_in_two_operations_is_tracked_apart():
    """Counter 1 in 'plan' of two operations are two messages, not a replay."""
    tracker = ReplayTracker()
    tracker.record("op-a", "plan", "dev-1", 1)
    tracker.record("op-b", "plan", "dev-1", 1)
    with pytest.raises(ReplayError):
        tracker.record("op-a", "plan", "dev-1", 1)


def test_epoch_authenticator_tells_a_fork_from_a_bad_key_and_old_headers_stay_readable(world, area):
    """A header bound to another commit of the same epoch is a ForkError before decryption; a
    second-encoding header round-trips and an altered authenticator breaks the signature; a
    first-encoding header (no authenticator) still opens."""
    state, _, coordinator, fr, _ = area
    ours, our_state, our_secret = create_commit(state, world.charter, coordinator, now=NOW + 1)
    _, their_state, their_secret = create_commit(state, world.charter, fr, now=NOW + 1)
    bound = header(their_state, fr.device_id, authenticator=epoch_authenticator(
        their_secret, their_state))  # fmt: skip
    envelope = Envelope.from_bytes(seal(bound, TEXT, their_secret, fr.signing_key).to_bytes())
    assert envelope.header.authenticator == bound.authenticator
    with pytest.raises(ForkError, match="epoch 1"):
        open_envelope(envelope, state=our_state, epoch_secret=our_secret)
    assert open_envelope(envelope, state=their_state, epoch_secret=their_secret) == TEXT
    moved = replace(envelope, header=replace(bound, authenticator=bytes(32)))
    with pytest.raises(SignatureError):
        open_envelope(moved, state=their_state, epoch_secret=their_secret)
    old = seal(header(our_state, fr.device_id), TEXT, our_secret, fr.signing_key)
    assert Envelope.from_bytes(old.to_bytes()).header.authenticator == b""
    assert open_envelope(old, state=our_state, epoch_secret=our_secret) == TEXT
    assert ours.epoch == 1
