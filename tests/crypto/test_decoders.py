"""Every decoder either round-trips or raises a CryptoError, never another exception."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opseal.crypto.certs import Certificate, Revocation
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import Reader, Writer, b64d, b64e, label
from opseal.crypto.envelope import Envelope, Header, seal
from opseal.crypto.errors import CryptoError, DecodeError, UnsupportedVersion
from opseal.crypto.group import Commit, GroupState, KeyPackage, create_area, create_commit
from opseal.crypto.keys import SigningKey, open_key_file
from opseal.crypto.statements import Receipt, ReceiptGossip

from .conftest import INSTANCE, NOW, World

DECODERS = {
    "certificate": Certificate.from_bytes,
    "revocation": Revocation.from_bytes,
    "charter": Charter.from_bytes,
    "key-package": KeyPackage.from_bytes,
    "group-state": GroupState.from_bytes,
    "commit": Commit.from_bytes,
    "header": Header.from_bytes,
    "envelope": Envelope.from_bytes,
    "key-file": lambda data: open_key_file(data, "pw", purpose="device"),
    "receipt": Receipt.from_bytes,
    "receipt-v1": Receipt.from_bytes,
}


def _samples() -> dict[str, bytes]:
    """One valid encoding of each structure, to mutate."""
    world = World()
    coordinator = world.device("wco", "ocu-lead", "wco-laptop")
    fr = world.device("fr-customs", "marie", "fr-marie-1")
    kp = KeyPackage.create(fr, operation_id=world.charter.operation_id, area="plan", now=NOW)
    _, s0, _ = create_area(world.charter, coordinator, instance_id=INSTANCE, area="plan", now=NOW)
    commit, s1, secret = create_commit(s0, world.charter, coordinator, now=NOW, adds=[kp])
    head = Header(INSTANCE, "op-stop-v", "plan", 1, "wco-laptop", 1, uuid.uuid4(), "document")
    envelope = seal(head, b"plan", secret, coordinator.signing_key)
    revocation = Revocation.issue(
        world.roots["fr-customs"], organisation_id="fr-customs", subject_id="fr-marie-1",
        revoked_key=fr.signing_key.verify_key, reason="lost", revoked_at=NOW,
    )  # fmt: skip
    receipt = Receipt.create(
        fr.signing_key, instance_id=INSTANCE, operation_id="op-stop-v", area="plan",
        message_id=head.message_id, kind="ack", device_id="fr-marie-1", signed_at=NOW,
        sender_device_id="wco-laptop",
    )  # fmt: skip
    legacy = replace(receipt, sender_device_id="")  # the first encoding names no sender
    return {
        "receipt": receipt.to_bytes(),
        "receipt-v1": legacy.to_bytes(),
        "certificate": fr.device_cert.to_bytes(),
        "revocation": revocation.to_bytes(),
        "charter": world.charter.to_bytes(),
        "key-package": kp.to_bytes(),
        "group-state": s1.to_bytes(),
        "commit": commit.to_bytes(),
        "header": head.encoded,
        "envelope": envelope.to_bytes(),
    }


SAMPLES = _samples()


def _decode_or_crypto_error(decode, data: bytes) -> None:
    with contextlib.suppress(CryptoError):
        decode(data)


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_crypto_error(name, data):
    """Random bytes never escape a decoder as anything but a CryptoError."""
    _decode_or_crypto_error(DECODERS[name], data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@settings(max_examples=150, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 1 << 20),
)
def test_mutated_encodings_decode_or_raise_crypto_error(name, edits, cut):
    """Valid encodings with bytes changed or cut off decode or raise a CryptoError."""
    data = bytearray(SAMPLES[name])
    for position, value in edits:
        data[position % len(data)] = value
    _decode_or_crypto_error(DECODERS[name], bytes(data[: len(data) - cut % 8]))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_valid_encodings_round_trip(name):
    """Each structure decodes from its encoding and encodes back to the same bytes."""
    decoded = DECODERS[name](SAMPLES[name])
    encoded = decoded.encoded if name == "header" else decoded.to_bytes()
    assert encoded == SAMPLES[name]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_trailing_bytes_are_refused(name):
    """One extra byte after a valid encoding is a DecodeError."""
    with pytest.raises(DecodeError, match="trailing"):
        DECODERS[name](SAMPLES[name] + b"\x00")


def test_unknown_protocol_version_is_refused():
    """A label of protocol version 2 raises UnsupportedVersion, naming the version."""
    future = Writer(b"opseal/v2/cert").text("x").finish()
    with pytest.raises(UnsupportedVersion, match="v2"):
        Certificate.from_bytes(future)
    with pytest.raises(DecodeError, match="unexpected label"):
        Certificate.from_bytes(Writer(label("commit")).finish())


@given(st.binary(max_size=256))
def test_base64url_round_trips(data):
    """Wire base64url text round-trips and refuses padding or foreign characters."""
    assert b64d(b64e(data)) == data


@pytest.mark.parametrize("text", ["a=", "a+b/", "abcde", "é", "AB"])
def test_base64url_refuses_bad_text(text):
    """Malformed or non-canonical base64url raises DecodeError."""
    with pytest.raises(DecodeError):
        b64d(text)


def test_reader_bounds_every_length():
    """A length prefix larger than its field's limit is refused before reading."""
    data = Writer(label("test")).blob(b"x" * 100).finish()
    reader = Reader(data, label("test"))
    with pytest.raises(DecodeError, match="longer than 10 bytes"):
        reader.blob(max_len=10, field="name")


def test_a_receipt_signs_its_messages_sender():
    """The sender is under the signature: a receipt relabelled to another sender's message,
    or read back as the first encoding (no sender), no longer verifies."""
    key = SigningKey.generate()
    receipt = Receipt.create(
        key, instance_id=INSTANCE, operation_id="op-stop-v", area="plan",
        message_id=uuid.uuid4(), kind="ack", device_id="fr-marie-1", signed_at=NOW,
        sender_device_id="wco-laptop",
    )  # fmt: skip
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt
    assert (receipt.encoding, Receipt.from_bytes(SAMPLES["receipt-v1"]).encoding) == (2, 1)
    receipt.verify(key.verify_key)
    for sender in ("de-hans-1", ""):
        with pytest.raises(CryptoError):
            replace(receipt, sender_device_id=sender).verify(key.verify_key)


def test_a_receipt_carries_its_signers_gossip_under_the_signature():
    """The second encoding carries the signer's epoch view when it has one; the gossip is
    signed (changing it breaks the signature) and needs a sender (no first-encoding gossip)."""
    key = SigningKey.generate()
    gossip = ReceiptGossip(7, bytes(range(32)), b"checkpoint")
    receipt = Receipt.create(
        key, instance_id=INSTANCE, operation_id="op-stop-v", area="plan",
        message_id=uuid.uuid4(), kind="read", device_id="fr-marie-1", signed_at=NOW,
        sender_device_id="wco-laptop", gossip=gossip,
    )  # fmt: skip
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt
    receipt.verify(key.verify_key)
    with pytest.raises(CryptoError):
        replace(receipt, gossip=replace(gossip, epoch=8)).verify(key.verify_key)
    with pytest.raises(CryptoError):
        replace(receipt, gossip=None).verify(key.verify_key)
    with pytest.raises(DecodeError, match="needs the second encoding"):
        replace(receipt, sender_device_id="")
