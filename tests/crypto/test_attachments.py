"""Streaming attachment encryption: round trips, STREAM attacks, hash checks, bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from opseal.crypto import attachments
from opseal.crypto.attachments import (
    DEFAULT_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    AttachmentDecryptor,
    AttachmentEncryptor,
    FileMeta,
    decrypt_file,
    encrypt_file,
    verify_ciphertext,
)
from opseal.crypto.encoding import Writer, b64e, label
from opseal.crypto.errors import (
    AttachmentError,
    CryptoError,
    DecodeError,
    StreamError,
    UnsupportedVersion,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PREFIX = b"\x01\x02\x03\x04\x05\x06\x07"
CHUNK = 1024
TAG = 16


def header(chunk_size: int = CHUNK, prefix: bytes = PREFIX, purpose: bytes | None = None) -> bytes:
    """The stream header as design §6 specifies it."""
    return Writer(purpose or label("attachment")).u32(chunk_size).blob(prefix).finish()


HEADER_LEN = len(header())


def plaintext(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes, different for each seed."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def encrypt(
    data: bytes, *, key: bytes = KEY, chunk_size: int = CHUNK, prefix: bytes = PREFIX, step=None
) -> bytes:
    """Ciphertext of ``data``, fed to the encryptor in pieces of ``step`` bytes."""
    encryptor = AttachmentEncryptor(key, chunk_size=chunk_size, nonce_prefix=prefix)
    step = step or max(len(data), 1)
    parts = [encryptor.update(data[i : i + step]) for i in range(0, len(data), step)]
    return b"".join(parts) + encryptor.finalize()


def decrypt(ciphertext: bytes, *, key: bytes = KEY, step: int | None = None) -> bytes:
    """Plaintext of ``ciphertext``, fed to the decryptor in pieces of ``step`` bytes."""
    decryptor = AttachmentDecryptor(key)
    step = step or max(len(ciphertext), 1)
    parts = [decryptor.update(ciphertext[i : i + step]) for i in range(0, len(ciphertext), step)]
    return b"".join(parts) + decryptor.finalize()


def split(ciphertext: bytes, chunk_size: int = CHUNK) -> tuple[bytes, list[bytes]]:
    """The header and the list of sealed chunks of a ciphertext stream."""
    body, size = ciphertext[HEADER_LEN:], chunk_size + TAG
    return ciphertext[:HEADER_LEN], [body[i : i + size] for i in range(0, len(body), size)]


def sample_meta(**changes) -> FileMeta:
    """A valid FileMeta, with some fields changed."""
    fields = dict(
        file_key=KEY, ciphertext_sha256=b"\xc1" * 32, plaintext_sha256=b"\xa7" * 32, size=5,
        ciphertext_size=60, media_type="application/pdf", file_name="operational-plan.pdf",
    )  # fmt: skip
    fields.update(changes)
    return FileMeta(**fields)


# --- round trips -------------------------------------------------------------------------------

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("step", [None, 1000, 4096])
def test_round_trip_for_boundary_sizes(size, step):
    """Plaintexts around chunk boundaries decrypt to themselves, whatever the piece sizes fed."""
    data = plaintext(size)
    ciphertext = encrypt(data, step=step)
    assert decrypt(ciphertext, step=step) == data


@pytest.mark.parametrize("size", SIZES)
def test_ciphertext_has_one_tag_per_chunk_and_a_final_chunk(size):
    """The stream is the header, then ceil(size / chunk) chunks (at least one), each with a tag."""
    chunks = max(1, -(-size // CHUNK))
    ciphertext = encrypt(plaintext(size))
    assert ciphertext.startswith(header())
    assert len(ciphertext) == HEADER_LEN + size + chunks * TAG


def test_decryptor_accepts_the_stream_one_byte_at_a_time():
    """Feeding single bytes, header included, still releases the whole plaintext."""
    data = plaintext(3 * CHUNK + 10)
    assert decrypt(encrypt(data), step=1) == data


def test_empty_file_is_one_empty_final_chunk():
    """An empty file encrypts to the header and one 16-byte final chunk."""
    ciphertext = encrypt(b"")
    assert len(ciphertext) == HEADER_LEN + TAG
    assert decrypt(ciphertext) == b""


def test_chunk_nonces_follow_the_design():
    """Chunk i opens with nonce prefix || u32 i || last flag and the header as associated data."""
    data = plaintext(CHUNK + 3)
    head, (first, last) = split(encrypt(data))
    aead = AESGCM(KEY)
    assert aead.decrypt(PREFIX + b"\x00\x00\x00\x00\x00", first, head) == data[:CHUNK]
    assert aead.decrypt(PREFIX + b"\x00\x00\x00\x01\x01", last, head) == data[CHUNK:]


def test_full_chunk_file_flags_its_only_chunk_final():
    """A file of exactly one chunk is a single chunk sealed with the last flag."""
    head, chunks = split(encrypt(plaintext(CHUNK)))
    assert len(chunks) == 1
    assert AESGCM(KEY).decrypt(PREFIX + b"\x00" * 4 + b"\x01", chunks[0], head)


def test_encryptor_reports_sizes_and_hashes():
    """After finalize the encryptor gives both sizes and both SHA-256s of the attachment."""
    data = plaintext(2 * CHUNK + 1)
    encryptor = AttachmentEncryptor(KEY, chunk_size=CHUNK, nonce_prefix=PREFIX)
    ciphertext = encryptor.update(data) + encryptor.finalize()
    assert (encryptor.size, encryptor.ciphertext_size) == (len(data), len(ciphertext))
    assert encryptor.plaintext_sha256 == hashlib.sha256(data).digest()
    assert encryptor.ciphertext_sha256 == hashlib.sha256(ciphertext).digest()


def test_file_round_trip_with_default_chunk_size():
    """encrypt_file and decrypt_file round-trip a multi-chunk file with 1 MiB chunks."""
    data = os.urandom(2 * DEFAULT_CHUNK_SIZE + 12345)
    ciphertext, out = io.BytesIO(), io.BytesIO()
    meta = encrypt_file(io.BytesIO(data), ciphertext, media_type="image/png", file_name="a.png")
    assert (meta.size, meta.ciphertext_size) == (len(data), len(ciphertext.getvalue()))
    assert meta.plaintext_sha256 == hashlib.sha256(data).digest()
    assert meta.ciphertext_sha256 == hashlib.sha256(ciphertext.getvalue()).digest()
    ciphertext.seek(0)
    decrypt_file(ciphertext, out, meta)
    assert out.getvalue() == data


def test_encrypt_file_uses_the_given_randomness():
    """The file key and nonce prefix come from random_bytes, and a fresh key each call."""
    data = plaintext(100)
    first, second = io.BytesIO(), io.BytesIO()
    meta1 = encrypt_file(io.BytesIO(data), first, media_type="a/b", file_name="x", chunk_size=CHUNK)
    meta2 = encrypt_file(io.BytesIO(data), second, media_type="a/b", file_name="x")
    assert meta1.file_key != meta2.file_key
    fixed = encrypt_file(
        io.BytesIO(data), io.BytesIO(), media_type="a/b", file_name="x", chunk_size=CHUNK,
        random_bytes=lambda n: bytes(n),
    )  # fmt: skip
    assert fixed.file_key == bytes(32)
    assert (
        fixed.ciphertext_sha256
        == hashlib.sha256(encrypt(data, key=bytes(32), prefix=bytes(7))).digest()
    )


# --- STREAM attacks ----------------------------------------------------------------------------

DATA = plaintext(4 * CHUNK + 100)
CIPHERTEXT = encrypt(DATA)
HEAD, CHUNKS = split(CIPHERTEXT)


def test_dropping_the_last_chunk_is_truncation():
    """A stream that ends on a non-final chunk raises StreamError naming the truncation."""
    truncated = HEAD + b"".join(CHUNKS[:-1])
    with pytest.raises(StreamError, match="truncated: no final chunk"):
        decrypt(truncated)


@pytest.mark.parametrize("cut", [1, TAG, CHUNK // 2, CHUNK + 15])
def test_cutting_the_stream_mid_chunk_is_refused(cut):
    """A stream cut inside a chunk raises StreamError."""
    with pytest.raises(StreamError):
        decrypt(CIPHERTEXT[:-cut])


@pytest.mark.parametrize("keep", [0, 3, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + TAG - 1])
def test_stream_without_header_or_chunk_is_truncated(keep):
    """A stream that stops inside the header or before any chunk raises StreamError."""
    with pytest.raises(StreamError, match="truncated"):
        decrypt(CIPHERTEXT[:keep])


def test_reordered_chunks_are_refused():
    """Swapping two chunks raises StreamError."""
    swapped = [CHUNKS[0], CHUNKS[2], CHUNKS[1], *CHUNKS[3:]]
    with pytest.raises(StreamError, match="chunk 1 failed authentication"):
        decrypt(HEAD + b"".join(swapped))


def test_extra_chunk_after_final_is_refused():
    """A chunk appended after the final one raises StreamError."""
    with pytest.raises(StreamError):
        decrypt(CIPHERTEXT + CHUNKS[1])


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * TAG, b"\x00" * (CHUNK + TAG + 1)])
def test_bytes_after_final_chunk_are_refused(extra):
    """Any bytes after the final chunk raise StreamError."""
    with pytest.raises(StreamError):
        decrypt(CIPHERTEXT + extra)


def test_copied_final_chunk_is_refused():
    """Repeating a short final chunk raises StreamError."""
    with pytest.raises(StreamError):
        decrypt(CIPHERTEXT + CHUNKS[-1])


def test_copied_full_final_chunk_is_named_an_extension():
    """Data after a full-size final chunk raises StreamError naming the extension."""
    ciphertext = encrypt(plaintext(2 * CHUNK))
    _, chunks = split(ciphertext)
    with pytest.raises(StreamError, match="extended: data follows the final chunk"):
        decrypt(ciphertext + chunks[-1])


def test_dropping_the_first_chunk_is_refused():
    """A stream missing its first chunk raises StreamError."""
    with pytest.raises(StreamError):
        decrypt(HEAD + b"".join(CHUNKS[1:]))


def test_chunk_from_another_stream_is_refused():
    """A chunk spliced in from another stream under the same key raises StreamError."""
    _, foreign = split(encrypt(DATA, prefix=b"\xff" * 7))
    with pytest.raises(StreamError):
        decrypt(HEAD + CHUNKS[0] + foreign[1] + b"".join(CHUNKS[2:]))


def test_flipped_bit_anywhere_is_refused():
    """Every single-bit change raises a CryptoError, and a StreamError past the header."""
    data = plaintext(2 * MIN_CHUNK_SIZE + 22)
    ciphertext = encrypt(data, chunk_size=MIN_CHUNK_SIZE)
    header_len = len(header(MIN_CHUNK_SIZE))
    for bit in range(len(ciphertext) * 8):
        damaged = bytearray(ciphertext)
        damaged[bit // 8] ^= 1 << (bit % 8)
        expected = CryptoError if bit // 8 < header_len else StreamError
        with pytest.raises(expected):
            decrypt(bytes(damaged))


def test_wrong_key_is_refused():
    """Decrypting under another key raises StreamError."""
    with pytest.raises(StreamError, match="failed authentication"):
        decrypt(CIPHERTEXT, key=OTHER_KEY)


def test_unknown_header_version_is_refused():
    """A header labelled for protocol version 2 raises UnsupportedVersion."""
    future = header(purpose=b"opseal/v2/attachment") + b"".join(CHUNKS)
    with pytest.raises(UnsupportedVersion, match="v2"):
        decrypt(future)


def test_foreign_header_label_is_refused():
    """A header with another structure's label raises DecodeError."""
    with pytest.raises(DecodeError, match="unexpected label"):
        decrypt(header(purpose=label("attachment-meta")) + b"".join(CHUNKS))


@pytest.mark.parametrize("chunk_size", [0, MIN_CHUNK_SIZE - 1, (16 << 20) + 1, 0xFFFFFFFF])
def test_header_chunk_size_out_of_range_is_refused(chunk_size):
    """A header chunk size outside the allowed bounds raises DecodeError before any allocation."""
    with pytest.raises(DecodeError, match="chunk size"):
        decrypt(header(chunk_size) + b"".join(CHUNKS))


def test_decryptor_stays_failed_after_an_error():
    """After an authentication failure, further updates raise StreamError."""
    decryptor = AttachmentDecryptor(OTHER_KEY)
    with pytest.raises(StreamError):
        decryptor.update(CIPHERTEXT)
    with pytest.raises(StreamError, match="already failed"):
        decryptor.update(b"")
    with pytest.raises(StreamError, match="already failed"):
        decryptor.finalize()


# --- misuse ------------------------------------------------------------------------------------


def test_encryptor_refuses_use_after_finalize():
    """Updating or finalizing a finalized encryptor raises AttachmentError."""
    encryptor = AttachmentEncryptor(KEY)
    encryptor.finalize()
    with pytest.raises(AttachmentError, match="already finalized"):
        encryptor.update(b"x")
    with pytest.raises(AttachmentError, match="already finalized"):
        encryptor.finalize()


def test_results_are_unavailable_before_finalize():
    """Sizes and hashes read before finalize raise AttachmentError."""
    encryptor, decryptor = AttachmentEncryptor(KEY), AttachmentDecryptor(KEY)
    with pytest.raises(AttachmentError, match="not finalized"):
        _ = encryptor.ciphertext_sha256
    with pytest.raises(AttachmentError, match="not finalized"):
        _ = decryptor.plaintext_sha256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"file_key": b"short"}, "file key"),
        ({"chunk_size": MIN_CHUNK_SIZE - 1}, "chunk size"),
        ({"chunk_size": (16 << 20) + 1}, "chunk size"),
        ({"nonce_prefix": b"\x00" * 8}, "nonce prefix"),
    ],
)
def test_encryptor_refuses_bad_parameters(kwargs, message):
    """A wrong key length, chunk size or nonce prefix raises AttachmentError."""
    args = {"file_key": KEY, **kwargs}
    with pytest.raises(AttachmentError, match=message):
        AttachmentEncryptor(args.pop("file_key"), **args)


# --- file helpers and hash checks --------------------------------------------------------------


def encrypted_file(data: bytes) -> tuple[FileMeta, bytes]:
    """Metadata and ciphertext of ``data`` encrypted with small chunks."""
    out = io.BytesIO()
    meta = encrypt_file(
        io.BytesIO(data), out, media_type="text/plain", file_name="n.txt", chunk_size=CHUNK
    )
    return meta, out.getvalue()


def test_decrypt_file_checks_the_ciphertext_hash_before_decrypting():
    """A valid stream whose SHA-256 differs from the metadata is refused and nothing is written."""
    meta, ciphertext = encrypted_file(plaintext(3 * CHUNK))
    wrong = replace(meta, ciphertext_sha256=hashlib.sha256(b"other").digest())
    dst = io.BytesIO()
    with pytest.raises(AttachmentError, match="ciphertext SHA-256"):
        decrypt_file(io.BytesIO(ciphertext), dst, wrong)
    assert dst.getvalue() == b""


def test_decrypt_file_writes_nothing_for_a_tampered_last_chunk():
    """Tampering with the last chunk is caught by the hash before earlier chunks are released."""
    meta, ciphertext = encrypted_file(plaintext(3 * CHUNK + 5))
    damaged = bytearray(ciphertext)
    damaged[-1] ^= 0x01
    dst = io.BytesIO()
    with pytest.raises(AttachmentError) as caught:
        decrypt_file(io.BytesIO(bytes(damaged)), dst, meta)
    assert type(caught.value) is AttachmentError
    assert dst.getvalue() == b""


@pytest.mark.parametrize("change", [-1, 1])
def test_decrypt_file_refuses_a_ciphertext_of_another_size(change):
    """A ciphertext shorter or longer than the metadata says is refused before decrypting."""
    meta, ciphertext = encrypted_file(plaintext(CHUNK))
    changed = ciphertext[:change] if change < 0 else ciphertext + b"\x00"
    dst = io.BytesIO()
    with pytest.raises(AttachmentError, match=r"shorter|longer"):
        decrypt_file(io.BytesIO(changed), dst, meta)
    assert dst.getvalue() == b""


@pytest.mark.parametrize(
    "change", [{"size": 1}, {"plaintext_sha256": hashlib.sha256(b"other").digest()}]
)
def test_decrypt_file_checks_plaintext_size_and_hash(change):
    """Metadata whose plaintext size or SHA-256 does not match the decryption is refused."""
    meta, ciphertext = encrypted_file(plaintext(CHUNK + 1))
    with pytest.raises(AttachmentError, match=r"plaintext (size|SHA-256)"):
        decrypt_file(io.BytesIO(ciphertext), io.BytesIO(), replace(meta, **change))


def test_decrypt_file_rewinds_to_where_the_stream_started():
    """A stream positioned after a prefix is verified and decrypted from that position."""
    data = plaintext(2 * CHUNK)
    meta, ciphertext = encrypted_file(data)
    src, dst = io.BytesIO(b"prefix" + ciphertext), io.BytesIO()
    src.seek(6)
    decrypt_file(src, dst, meta)
    assert dst.getvalue() == data


def test_verify_ciphertext_accepts_the_matching_stream():
    """verify_ciphertext returns quietly for the ciphertext the metadata describes."""
    meta, ciphertext = encrypted_file(plaintext(10))
    verify_ciphertext(io.BytesIO(ciphertext), meta)


# --- constant memory ---------------------------------------------------------------------------


class GeneratedReader:
    """A read-only file object fed by a generator of blocks; it never holds the whole stream."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._current = b""
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if not self._current:
            self._current = next(self._blocks, b"")
            self.digest.update(self._current)
        if 0 <= size < len(self._current):
            piece, self._current = self._current[:size], self._current[size:]
        else:
            piece, self._current = self._current, b""
        return piece


class HashingWriter:
    """A write-only file object that keeps only a SHA-256 and a byte count."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def generated_blocks(total: int, block: int = 1 << 20) -> Iterator[bytes]:
    """``total`` bytes in blocks, each distinct, generated on demand."""
    base = bytearray(os.urandom(block))
    for index in range(total // block):
        base[:8] = index.to_bytes(8, "big")
        yield bytes(base)


def test_memory_stays_bounded_for_a_large_attachment(tmp_path):
    """Encrypting and decrypting 64 MiB stays under 6 MiB of traced memory at peak."""
    total = 64 << 20
    source, sink = GeneratedReader(generated_blocks(total)), HashingWriter()
    path = tmp_path / "blob"
    tracemalloc.start()
    try:
        with path.open("wb") as blob:
            meta = encrypt_file(source, blob, media_type="video/mp4", file_name="cctv.mp4")
        with path.open("rb") as blob:
            decrypt_file(blob, sink, meta)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (meta.size, sink.size) == (total, total)
    assert sink.digest.digest() == source.digest.digest() == meta.plaintext_sha256
    assert peak < 6 << 20


# --- metadata ----------------------------------------------------------------------------------


def test_file_meta_round_trips_through_bytes_and_json():
    """FileMeta encodes to bytes and to a JSON dict and decodes back to an equal value."""
    meta = sample_meta(file_name="plan, version 2 (été).pdf")
    assert FileMeta.from_bytes(meta.to_bytes()) == meta
    assert FileMeta.from_json(meta.to_json()) == meta
    assert meta.to_json()["file_key"] == b64e(KEY)


def test_file_meta_repr_hides_the_key_and_name():
    """The repr of FileMeta shows no form of the file key, nor the file name."""
    meta = sample_meta()
    text = repr(meta)
    for secret in (repr(KEY), KEY.hex(), b64e(KEY), meta.file_name, str(meta.file_key)):
        assert secret not in text
    assert "***" in text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"file_key": b"\x00" * 31}, "file_key"),
        ({"ciphertext_sha256": b""}, "ciphertext_sha256"),
        ({"size": -1}, "size"),
        ({"ciphertext_size": True}, "ciphertext_size"),
        ({"media_type": "text/plain\n"}, "media_type"),
        ({"file_name": "x" * 1025}, "file_name"),
        ({"file_name": "\udc80"}, "file_name"),
    ],
)
def test_file_meta_refuses_invalid_fields(change, field):
    """Each invalid field raises AttachmentError naming that field."""
    with pytest.raises(AttachmentError, match=field):
        sample_meta(**change)


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"size": "5"},
        {"size": True},
        {"file_key": "not base64!"},
        {"media_type": None},
    ],
)
def test_file_meta_from_json_is_strict(change):
    """Unknown keys, wrong types and bad base64url raise DecodeError."""
    with pytest.raises(DecodeError):
        FileMeta.from_json({**sample_meta().to_json(), **change})


def test_file_meta_from_json_refuses_missing_keys():
    """A JSON dict without one of the fields raises DecodeError."""
    fields = sample_meta().to_json()
    del fields["file_name"]
    with pytest.raises(DecodeError, match="keys"):
        FileMeta.from_json(fields)


metas = st.builds(
    FileMeta,
    file_key=st.binary(min_size=32, max_size=32),
    ciphertext_sha256=st.binary(min_size=32, max_size=32),
    plaintext_sha256=st.binary(min_size=32, max_size=32),
    size=st.integers(0, (1 << 64) - 1),
    ciphertext_size=st.integers(0, (1 << 64) - 1),
    media_type=st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=60),
    file_name=st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=200),
)


@given(metas)
def test_any_valid_file_meta_round_trips(meta):
    """Every valid FileMeta survives its binary and JSON encodings unchanged."""
    assert FileMeta.from_bytes(meta.to_bytes()) == meta
    assert FileMeta.from_json(meta.to_json()) == meta


VALID_META = sample_meta().to_bytes()


def mutated(position: int, value: int, cut: int) -> bytes:
    """A valid FileMeta encoding with one byte set to ``value`` and ``cut`` bytes dropped."""
    data = bytearray(VALID_META)
    data[position % len(data)] = value
    return bytes(data[: len(data) - cut])


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(mutated, st.integers(0, 1 << 16), st.integers(0, 255), st.integers(0, 8)),
    )
)
def test_file_meta_from_bytes_round_trips_or_raises_crypto_error(data):
    """Arbitrary or mutated bytes decode to a FileMeta that re-encodes to them, or CryptoError."""
    try:
        meta = FileMeta.from_bytes(data)
    except CryptoError:
        return
    assert meta.to_bytes() == data


def test_public_names_are_exported():
    """Every name in __all__ exists in the module."""
    assert all(hasattr(attachments, name) for name in attachments.__all__)
