"""Message envelopes (design §5): seal, open, and a replay / gap tracker per sender.

The header travels in clear (the server routes and orders by it) but is authenticated twice:
as AES-256-GCM associated data under a per-message key, and inside the sender device's
Ed25519 signature over ``opseal/v1/msg || header || ciphertext``. The message key and nonce
come from HKDF-SHA256 over the epoch secret and the header's digest, so every message has its
own key and the header cannot be moved to another area, epoch or operation.

Headers of the second encoding (``opseal/v1/msg-header/2``) also carry the sender's epoch
authenticator (:func:`~opseal.crypto.group.epoch_authenticator`): a receiver on another
branch of the same epoch gets a :class:`ForkError` instead of a bare decryption failure.
Headers of the first encoding, without it, stay readable.
"""

from __future__ import annotations

import bisect
import hmac
import math
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .charter import Charter
from .encoding import Reader, Writer, decode_all, label, length_prefixed, sha256
from .errors import (
    ContextError,
    DecodeError,
    DecryptionError,
    EnvelopeError,
    ForkError,
    ReplayError,
)
from .group import GroupState, epoch_authenticator
from .keys import HmacKey, SigningKey, VerifyKey, hkdf_expand, hkdf_extract

__all__ = [
    "CONTENT_TYPES",
    "HANDLING_CODES",
    "MAX_COUNTER_JUMP",
    "MAX_GAP_RANGES",
    "MAX_PLAINTEXT",
    "CheckedSignature",
    "Envelope",
    "Header",
    "ReplayTracker",
    "forget_epoch_keys",
    "open_envelope",
    "seal",
]

CONTENT_TYPES = ("text", "seizure", "document", "alert", "alert-response", "release", "correction")
HANDLING_CODES = ("H0", "H1", "H2", "H3")
MAX_PLAINTEXT = 4 * 1024 * 1024
_HEADER = label("msg-header")
_HEADER_2 = label("msg-header/2")
_MSG = label("msg")
_MSG_KEY = label("msg-key")


@dataclass(frozen=True)
class Header:
    """The authenticated, server-visible part of a message."""

    instance_id: str
    operation_id: str
    area: str
    epoch: int
    sender: str
    counter: int
    message_id: uuid.UUID
    content_type: str
    handling: str = "H0"
    requires_ack: bool = False
    client_time_ms: int = 0
    authenticator: bytes = b""
    """The sender's epoch authenticator (second encoding); empty in first-encoding headers."""

    def __post_init__(self) -> None:
        if self.authenticator and len(self.authenticator) != 32:
            raise DecodeError("message header: the epoch authenticator is 32 bytes")
        if self.content_type not in CONTENT_TYPES:
            raise DecodeError(f"message header: unknown content type {self.content_type!r}")
        if self.handling not in HANDLING_CODES:
            raise DecodeError(f"message header: unknown handling code {self.handling!r}")
        if self.counter < 1:
            raise DecodeError("message header: counters start at 1")

    @cached_property
    def encoded(self) -> bytes:
        w = Writer(_HEADER_2 if self.authenticator else _HEADER)
        w.text(self.instance_id).text(self.operation_id).text(self.area)
        w.u64(self.epoch).text(self.sender).u64(self.counter).blob(self.message_id.bytes)
        w.text(self.content_type).text(self.handling).bool(self.requires_ack)
        w.u64(self.client_time_ms)
        if self.authenticator:
            w.blob(self.authenticator)
        return w.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        if bytes(data[: 4 + len(_HEADER_2)]) == length_prefixed(_HEADER_2):
            header = decode_all(data, _HEADER_2, "message header", cls._read_second)
        else:
            header = decode_all(data, _HEADER, "message header", cls._read_fields)
        # The encoding is canonical (fixed-width integers, exact lengths, strict UTF-8, 0/1
        # booleans, one label per layout), so the bytes read are the bytes re-encoding gives.
        header.__dict__["encoded"] = bytes(data)
        return header

    @classmethod
    def _read_second(cls, r: Reader) -> Header:
        first = cls._read_fields(r)
        authenticator = r.blob(exact=32, field="authenticator")
        return replace(first, authenticator=authenticator)

    @classmethod
    def _read_fields(cls, r: Reader) -> Header:
        return cls(
            instance_id=r.text(max_len=128, field="instance_id"),
            operation_id=r.text(max_len=128, field="operation_id"),
            area=r.text(max_len=64, field="area"),
            epoch=r.u64("epoch"),
            sender=r.text(max_len=128, field="sender"),
            counter=r.u64("counter"),
            message_id=uuid.UUID(bytes=r.blob(exact=16, field="message_id")),
            content_type=r.text(max_len=32, field="content_type"),
            handling=r.text(max_len=4, field="handling"),
            requires_ack=r.bool("requires_ack"),
            client_time_ms=r.u64("client_time_ms"),
        )


@dataclass(frozen=True)
class Envelope:
    """A sealed message: header, ciphertext and the sender device's signature."""

    header: Header
    ciphertext: bytes
    signature: bytes
    # The signed bytes as received (from_bytes): verifying does not re-encode them. Not an
    # __init__ field, so an envelope made by ``replace`` always re-encodes what it holds.
    _signed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_be_signed(self) -> bytes:
        if self._signed is not None:
            return self._signed
        return Writer(_MSG).blob(self.header.encoded).blob(self.ciphertext).finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        quick = _quick_envelope(data)
        if quick is not None:
            return quick

        def read(r: Reader) -> Envelope:
            header = Header.from_bytes(r.blob(max_len=2048, field="header"))
            ciphertext = r.blob(max_len=MAX_PLAINTEXT + 16, field="ciphertext")
            signed = r.consumed()
            envelope = cls(header, ciphertext, r.blob(exact=64, field="signature"))
            object.__setattr__(envelope, "_signed", signed)
            return envelope

        return decode_all(data, _MSG, "envelope", read)

    @staticmethod
    def header_of(data: bytes) -> Header:
        """The header of an encoded envelope, the rest unread: for a stored envelope (checked
        whole when it was stored) whose header alone is wanted — a group of single posts
        reads each sender's latest, so the one-pass reader comes first."""
        header = _quick_header_of(data)
        if header is not None:
            return header
        return Header.from_bytes(Reader(data, _MSG, what="envelope").blob(max_len=2048))

    def verify_signature(self, key: VerifyKey) -> None:
        """Check the sender's signature: what the server does before storing an envelope."""
        key.verify(self.signature, self.to_be_signed(), what="message signature")


_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MSG_PREFIX = length_prefixed(_MSG)
_HEADER_PREFIX = length_prefixed(_HEADER)
_HEADER_2_PREFIX = length_prefixed(_HEADER_2)
_SIGNATURE_SIZE = _U32.pack(64)


def _quick_envelope(data: bytes) -> Envelope | None:
    """The envelope in ``data`` read in one pass (a sync decodes thousands), or None for
    anything but a well-formed envelope: the strict :class:`Reader` then says what is wrong.
    It accepts exactly what the reader accepts (tests/crypto/test_envelope_decoding.py)."""
    try:
        if (span := _header_span(data)) is None:
            return None
        encoded, pos = span
        (size,) = _U32.unpack_from(data, pos)
        if size > MAX_PLAINTEXT + 16:
            return None
        ciphertext, pos = data[pos + 4 : pos + 4 + size], pos + 4 + size
        if len(data) != pos + 68 or data[pos : pos + 4] != _SIGNATURE_SIZE:
            return None
        header = _quick_header(encoded)
    except (struct.error, ValueError, DecodeError):  # UnicodeDecodeError is a ValueError
        return None
    if header is None:
        return None
    envelope = Envelope(header, ciphertext, data[pos + 4 :])
    object.__setattr__(envelope, "_signed", data[:pos])
    return envelope


def _quick_header_of(data: bytes) -> Header | None:
    """:meth:`Envelope.header_of` in one pass, or None (see :func:`_quick_envelope`)."""
    try:
        return None if (span := _header_span(data)) is None else _quick_header(span[0])
    except (struct.error, ValueError, DecodeError):  # UnicodeDecodeError is a ValueError
        return None


def _header_span(data: bytes) -> tuple[bytes, int] | None:
    """An envelope's header bytes and the position after them; None if not an envelope's."""
    if type(data) is not bytes or not data.startswith(_MSG_PREFIX):
        return None
    pos = len(_MSG_PREFIX)
    (size,) = _U32.unpack_from(data, pos)
    if size > 2048 or pos + 4 + size > len(data):
        return None
    return data[pos + 4 : pos + 4 + size], pos + 4 + size


def _quick_header(data: bytes) -> Header | None:
    """:meth:`Header.from_bytes` in one pass, or None (see :func:`_quick_envelope`)."""
    if data.startswith(_HEADER_2_PREFIX):
        pos, second = len(_HEADER_2_PREFIX), True
    elif data.startswith(_HEADER_PREFIX):
        pos, second = len(_HEADER_PREFIX), False
    else:
        return None
    instance_id, pos = _quick_text(data, pos, 128)
    operation_id, pos = _quick_text(data, pos, 128)
    area, pos = _quick_text(data, pos, 64)
    (epoch,) = _U64.unpack_from(data, pos)
    sender, pos = _quick_text(data, pos + 8, 128)
    (counter,) = _U64.unpack_from(data, pos)
    if data[pos + 8 : pos + 12] != b"\x00\x00\x00\x10":
        return None
    message_id, pos = data[pos + 12 : pos + 28], pos + 28
    content_type, pos = _quick_text(data, pos, 32)
    handling, pos = _quick_text(data, pos, 4)
    flag, client_time_ms = struct.unpack_from(">BQ", data, pos)
    pos += 9
    authenticator = b""
    if second:
        if data[pos : pos + 4] != b"\x00\x00\x00\x20":
            return None
        authenticator, pos = data[pos + 4 : pos + 36], pos + 36
    if flag > 1 or pos != len(data):
        return None
    header = Header(
        instance_id, operation_id, area, epoch, sender, counter, uuid.UUID(bytes=message_id),
        content_type, handling, flag == 1, client_time_ms, authenticator,
    )  # fmt: skip
    header.__dict__["encoded"] = data
    return header


def _quick_text(data: bytes, pos: int, max_len: int) -> tuple[str, int]:
    (size,) = _U32.unpack_from(data, pos)
    if size > max_len or pos + 4 + size > len(data):
        raise ValueError("not a well-formed text field")
    return data[pos + 4 : pos + 4 + size].decode("utf-8"), pos + 4 + size


@dataclass(frozen=True)
class CheckedSignature:
    """A message signature already verified elsewhere (the sync's worker process): under
    which public key, and the very signature and signed bytes it was verified over."""

    key: bytes
    signature: bytes
    signed: bytes

    def covers(self, envelope: Envelope, key: bytes) -> bool:
        """Whether this is ``envelope``'s own signature and bytes, verified under ``key``."""
        return (
            self.key == key
            and self.signature == envelope.signature
            and self.signed == envelope.to_be_signed()
        )


def _message_key(epoch_secret: bytes, header: Header) -> tuple[bytes, bytes]:
    okm = hkdf_expand(_epoch_key(epoch_secret), _MSG_KEY + sha256(header.encoded), 44)
    return okm[:32], okm[32:]


@lru_cache(maxsize=8)
def _epoch_key(epoch_secret: bytes) -> HmacKey:
    """HKDF's extract step of an epoch secret, the same for every message of the epoch (a
    sync opens thousands): kept for the few epochs in use, half of a message key's cost. The
    cache holds the secrets themselves: :func:`forget_epoch_keys` empties it."""
    return hkdf_extract(epoch_secret)


def forget_epoch_keys() -> None:
    """Drop the cached epoch keys and the secrets they hold: when a device deletes epoch
    secrets (forward secrecy) and when a client closes, so a long-lived process (the agent,
    ``tail``, an application) keeps none in memory after the store dropped them."""
    _epoch_key.cache_clear()


def seal(
    header: Header, plaintext: bytes, epoch_secret: bytes, signing_key: SigningKey
) -> Envelope:
    """Encrypt ``plaintext`` under the epoch secret and sign the result as the sender device."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise EnvelopeError(f"message larger than {MAX_PLAINTEXT} bytes; use an attachment")
    key, nonce = _message_key(epoch_secret, header)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, header.encoded)
    draft = Envelope(header, ciphertext, b"")
    return Envelope(header, ciphertext, signing_key.sign(draft.to_be_signed()))


def open_envelope(
    envelope: Envelope,
    *,
    state: GroupState,
    epoch_secret: bytes,
    charter: Charter | None = None,
    tracker: ReplayTracker | None = None,
    authenticator: bytes | None = None,
    signed_by: CheckedSignature | None = None,
) -> bytes:
    """Verify and decrypt an envelope received for the area and epoch of ``state``.

    Refuses (and the caller reports) an envelope of another instance, operation, area or
    epoch, from a sender not in that epoch's roster, with a bad signature, from a role the
    ``charter`` does not let post, sealed on another branch of the epoch (:class:`ForkError`,
    from the signed epoch authenticator), that does not decrypt, or that replays a counter.
    ``authenticator`` is the epoch's authenticator if the caller keeps it (computing it hashes
    the whole state). ``signed_by`` is a signature the caller already verified (in a worker
    process, with :func:`~.keys.sodium_accepts`): the check is not repeated if it is this
    envelope's signature over its bytes, under the sender's key in ``state``.
    """
    header = envelope.header
    _check_context(header, state)
    sender = state.member(header.sender)
    if sender is None:
        raise EnvelopeError(f"sender {header.sender!r} is not a member of epoch {state.epoch}")
    if signed_by is None or not signed_by.covers(envelope, sender.signing_key.raw):
        envelope.verify_signature(sender.signing_key)
    if header.authenticator and not hmac.compare_digest(
        header.authenticator, authenticator or epoch_authenticator(epoch_secret, state)
    ):  # a first-encoding header carries none: nothing to compute
        raise ForkError(
            f"fork in area {header.area!r}, epoch {header.epoch}: {header.sender!r} sealed this "
            "message under another commit of the same epoch than the one this device holds"
        )
    if charter is not None:
        charter.check_may_post(sender.organisation_id, header.area)
    key, nonce = _message_key(epoch_secret, header)
    try:
        plaintext = AESGCM(key).decrypt(nonce, envelope.ciphertext, header.encoded)
    except InvalidTag as exc:
        raise DecryptionError("message does not decrypt under this epoch's secret") from exc
    if tracker is not None:
        tracker.record(header.operation_id, header.area, header.sender, header.counter)
    return plaintext


def _check_context(header: Header, state: GroupState) -> None:
    if header.instance_id != state.instance_id:
        raise ContextError("message belongs to another instance")
    if header.operation_id != state.operation_id:
        raise ContextError("message belongs to another operation")
    if header.area != state.area:
        raise ContextError(f"message for area {header.area!r} received in area {state.area!r}")
    if header.epoch != state.epoch:
        raise ContextError(f"message for epoch {header.epoch} opened in epoch {state.epoch}")


MAX_COUNTER_JUMP = 100_000
"""The largest step between a sender's consecutive counters in an area: readers refuse a larger
jump, and the server refuses to store it (``counter_refused``)."""
MAX_GAP_RANGES = 1024
"""Runs of missing counters a reader keeps per sender; past it, the oldest run is forgotten."""
_LISTED_RUN = 3

Runs = list[tuple[int, int]]


@dataclass
class _SenderLog:
    highest: int = 0
    missing: Runs = field(default_factory=list)  # sorted, disjoint (first, last) runs


class ReplayTracker:
    """Remembers, per operation, area and sender, which counters were accepted.

    A counter seen before raises :class:`ReplayError`. Counters skipped over are kept as
    possibly missing messages until they arrive late (then accepted once) — :meth:`gaps`.
    Memory is bounded per sender: missing counters are kept as runs (first, last), at most
    :attr:`max_ranges` of them (past that, the oldest run is forgotten and a message from it
    arriving later is refused as a replay), and a jump of more than :attr:`max_gap` counters is
    refused. Missing counters are written compactly (:meth:`gaps`): a run of up to three
    counters as the counters, a longer run as ``[first, last]``.
    """

    max_gap = MAX_COUNTER_JUMP
    max_ranges = MAX_GAP_RANGES

    def __init__(self) -> None:
        self._logs: dict[tuple[str, str, str], _SenderLog] = {}
        self._changed: set[tuple[str, str, str]] = set()

    def record(self, operation: str, area: str, sender: str, counter: int) -> None:
        key = (operation, area, sender)
        log = self._logs.setdefault(key, _SenderLog())
        if counter - log.highest > self.max_gap:
            raise EnvelopeError(f"counter of {sender!r} jumps by more than {self.max_gap}")
        if counter > log.highest:
            if counter > log.highest + 1:
                log.missing.append((log.highest + 1, counter - 1))
            log.highest = counter
        elif not _take(log.missing, counter):
            raise ReplayError(f"message {counter} from {sender!r} in {area!r} was already seen")
        del log.missing[: max(0, len(log.missing) - self.max_ranges)]
        self._changed.add(key)

    def gaps(self, operation: str, area: str, sender: str) -> list[int | list[int]]:
        """Counters skipped by ``sender`` in ``area`` that have not arrived (compact form)."""
        log = self._logs.get((operation, area, sender))
        return _compact(log.missing) if log else []

    def __iter__(self) -> Iterator[tuple[str, str, str, int, list[int | list[int]]]]:
        """Every (operation, area, sender, highest counter, missing counters), to persist."""
        for key, log in self._logs.items():
            yield *key, log.highest, _compact(log.missing)

    def take_changes(self) -> list[tuple[str, str, str, int, list[int | list[int]]]]:
        """The rows of :meth:`__iter__` changed since the last call: what to persist now."""
        keys, self._changed = self._changed, set()
        return [(*k, self._logs[k].highest, _compact(self._logs[k].missing)) for k in keys]

    def restore(
        self,
        operation: str,
        area: str,
        sender: str,
        highest: int,
        missing: Iterable[int | Sequence[int]],
    ) -> None:
        """Reload one sender's record saved from :meth:`__iter__` (plain counter lists of
        earlier versions are read too)."""
        runs: Runs = []
        for item in sorted(_run(m) for m in missing):
            if runs and item[0] <= runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], max(runs[-1][1], item[1]))
            else:
                runs.append(item)
        self._logs[(operation, area, sender)] = _SenderLog(highest, runs[-self.max_ranges :])


def _take(runs: Runs, counter: int) -> bool:
    """Remove ``counter`` from the run holding it; False if no run does."""
    i = bisect.bisect_right(runs, (counter, math.inf)) - 1
    if i < 0 or runs[i][1] < counter:
        return False
    first, last = runs[i]
    pieces = [(a, b) for a, b in ((first, counter - 1), (counter + 1, last)) if a <= b]
    runs[i : i + 1] = pieces
    return True


def _run(item: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(item, int):
        return item, item
    first, last = item
    return int(first), int(last)


def _compact(runs: Runs) -> list[int | list[int]]:
    out: list[int | list[int]] = []
    for first, last in runs:
        if last - first < _LISTED_RUN:
            out.extend(range(first, last + 1))
        else:
            out.append([first, last])
    return out
