"""The one-pass decoders a sync uses accept exactly what the strict decoders accept."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from opseal.crypto import envelope as envelope_module
from opseal.crypto.encoding import Writer, _b64d_canonical, _b64d_checked, b64e, label
from opseal.crypto.envelope import Envelope, Header, _quick_envelope, _quick_header_of, seal
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import SigningKey

T = TypeVar("T")

KEY = SigningKey(bytes(range(32)))


def _header(authenticator: bytes = b"") -> Header:
    return Header(
        "instance-1", "op-stop-v", "seizures", 3, "de-customs-1", 17,
        uuid.UUID(bytes=bytes(range(16))), "seizure", "H1", True, 1_700_000_000_000, authenticator,
    )  # fmt: skip


SAMPLES = [
    seal(_header(os.urandom(32)), b'{"record_id": "DE-1"}', bytes(32), KEY).to_bytes(),
    seal(_header(), b"first encoding", bytes(32), KEY).to_bytes(),
    seal(_header(bytes(32)), b"", bytes(32), KEY).to_bytes(),
]


def _without(one_pass: str, read: Callable[[bytes], T], data: bytes) -> T | None:
    """What ``read`` gives for ``data`` with the one-pass reader ``one_pass`` turned off, or
    None if the strict reader refuses it."""
    quick = getattr(envelope_module, one_pass)
    setattr(envelope_module, one_pass, lambda _: None)
    try:
        return read(data)
    except CryptoError:
        return None
    finally:
        setattr(envelope_module, one_pass, quick)


def _strict(data: bytes) -> Envelope | None:
    """The envelope as the strict reader decodes it, or None if it refuses it."""
    return _without("_quick_envelope", Envelope.from_bytes, data)


def _same(a: Envelope, b: Envelope) -> bool:
    return (a, a.header.encoded, a.to_be_signed()) == (b, b.header.encoded, b.to_be_signed())


def _mutations() -> st.SearchStrategy[bytes]:
    def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        out = bytearray(data)
        for kind, where, value in edits:
            where %= len(out) + 1
            if kind == 0 and where < len(out):
                out[where] = value
            elif kind == 1:
                out[where:where] = bytes([value])
            else:
                del out[where : where + 1 + value % 4]
        return bytes(out)

    edit = st.tuples(st.integers(0, 2), st.integers(0, 4096), st.integers(0, 255))
    return st.builds(mutate, st.sampled_from(SAMPLES), st.lists(edit, min_size=1, max_size=3))


def test_the_quick_decoder_reads_well_formed_envelopes_as_the_strict_one_does():
    """Every sample decodes in one pass to the envelope the strict reader gives."""
    for data in SAMPLES:
        quick, strict = _quick_envelope(data), _strict(data)
        assert quick is not None
        assert strict is not None
        assert _same(quick, strict)


@settings(max_examples=1500, deadline=None)
@given(_mutations())
def test_the_quick_decoder_never_accepts_what_the_strict_one_refuses(data):
    """A mutated envelope is read alike by both decoders, or left to the strict one."""
    quick, strict = _quick_envelope(data), _strict(data)
    if quick is not None:
        assert strict is not None
        assert _same(quick, strict)


def _strict_header(data: bytes) -> Header | None:
    """The header as :meth:`Envelope.header_of` reads it without its one-pass reader."""
    return _without("_quick_header_of", Envelope.header_of, data)


@settings(max_examples=1500, deadline=None)
@given(_mutations())
def test_the_quick_header_reader_never_accepts_what_the_strict_one_refuses(data):
    """A stored envelope's header (a group of single posts reads each sender's latest) is read
    alike by both readers, or left to the strict one; well-formed samples take the quick path."""
    quick, strict = _quick_header_of(data), _strict_header(data)
    if quick is not None:
        assert strict is not None
        assert (quick, quick.encoded) == (strict, strict.encoded)
    for sample in SAMPLES:
        header = _quick_header_of(sample)
        assert header is not None
        assert header == _strict_header(sample) == Envelope.from_bytes(sample).header


def test_a_header_with_a_field_too_long_is_left_to_the_strict_decoder():
    """An area name over its 64-byte bound is refused by the strict reader, with its reason."""
    header = Writer(label("msg-header")).text("i").text("op").text("a" * 65).finish()
    data = Writer(label("msg")).blob(header).blob(b"").finish() + bytes(68)
    assert _quick_envelope(data) is None
    assert _strict(data) is None


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.binary(max_size=40).map(b64e), st.text("AZaz09-_+/= \n\u00e9", max_size=12)))
def test_base64url_fast_path_accepts_exactly_canonical_text(text):
    """The fast base64url decoder gives the bytes the checked one gives, or nothing when the
    checked one refuses the text."""
    try:
        expected: bytes | None = _b64d_checked(text, "body", 1 << 20)
    except CryptoError:
        expected = None
    assert _b64d_canonical(text, 1 << 20) == expected
