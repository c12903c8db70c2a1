"""Streaming attachment encryption (design §6).

Each attachment gets a random 32-byte file key and is encrypted with the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizár: online authenticated encryption) over AES-256-GCM. The
plaintext is cut into fixed-size chunks; chunk ``i`` is sealed with the nonce

    nonce_prefix (7 bytes) || i (4 bytes, big-endian) || last-chunk flag (1 byte: 0x01 or 0x00)

and the stream header as associated data, so a dropped, reordered, duplicated or appended chunk
fails authentication. An empty file is one empty final chunk. The ciphertext stream is::

    header = Writer(label("attachment")).u32(chunk_size).blob(nonce_prefix)
    stream = header || chunk_0 || ... || chunk_n      (each chunk: ciphertext || 16-byte tag)

:class:`FileMeta` (file key, both SHA-256s, sizes, media type, file name) travels inside the
signed, encrypted message. :func:`decrypt_file` checks the ciphertext hash before it decrypts
anything. Everything here works on bytes and on file-like objects the caller opened, in memory
bounded by a few chunks whatever the attachment size.

Failures: a broken stream raises :class:`StreamError`; metadata, size or hash mismatches raise
:class:`AttachmentError`; a malformed or unknown-version header or metadata encoding raises
:class:`DecodeError` (or :class:`UnsupportedVersion`). No message carries key material or
plaintext.

Long because: the STREAM construction, its header, the file metadata and the file-to-file
helpers are one format, easiest to review in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .encoding import Reader, Writer, b64d, b64e, label
from .errors import AttachmentError, CryptoError, DecodeError, StreamError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "AttachmentDecryptor",
    "AttachmentEncryptor",
    "FileMeta",
    "decrypt_file",
    "encrypt_file",
    "verify_ciphertext",
]

_Bytes: TypeAlias = bytes | bytearray | memoryview

FILE_KEY_SIZE = 32
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 16 << 20
"""Bounds on the plaintext chunk size; a header outside them is refused (memory stays bounded)."""

_NONCE_PREFIX_SIZE = 7
_TAG_SIZE = 16
_HASH_SIZE = 32
_MAX_CHUNKS = 1 << 32
_MAX_LABEL = 80
_READ_SIZE = DEFAULT_CHUNK_SIZE
_NONCE_TAIL = struct.Struct(">IB")
_U32 = struct.Struct(">I")
_HEADER_LABEL = label("attachment")
_META_LABEL = label("attachment-meta")
_MAX_MEDIA_TYPE = 255
_MAX_FILE_NAME = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_FINALIZED = "attachment {}: not finalized yet"
_OPEN, _FAILED, _DONE = "open", "failed", "done"


# --- stream header and chunk cipher ------------------------------------------------------------


def _check_key(file_key: _Bytes) -> None:
    if not isinstance(file_key, bytes | bytearray | memoryview) or len(file_key) != FILE_KEY_SIZE:
        raise AttachmentError(f"attachment file key must be {FILE_KEY_SIZE} bytes")


def _check_chunk_size(chunk_size: int) -> None:
    if type(chunk_size) is not int or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AttachmentError(
            f"attachment chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"
        )


def _encode_header(chunk_size: int, nonce_prefix: bytes) -> bytes:
    return Writer(_HEADER_LABEL).u32(chunk_size).blob(nonce_prefix).finish()


def _header_length(start: _Bytes) -> int:
    """Total header length, from its first four bytes (the label's length prefix)."""
    label_len: int = _U32.unpack(start[:4])[0]
    if label_len > _MAX_LABEL:
        raise DecodeError("attachment header: label too long")
    return 4 + label_len + 4 + 4 + _NONCE_PREFIX_SIZE


def _decode_header(header: bytes) -> tuple[int, bytes]:
    """The chunk size and nonce prefix of an encoded header; refuses other labels or versions."""
    reader = Reader(header, _HEADER_LABEL, what="attachment header")
    chunk_size = reader.u32("chunk_size")
    nonce_prefix = reader.blob(exact=_NONCE_PREFIX_SIZE, field="nonce_prefix")
    reader.finish()
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecodeError("attachment header: chunk size out of range")
    return chunk_size, nonce_prefix


class _ChunkCipher:
    """AES-256-GCM over consecutive chunks: builds each STREAM nonce and counts the chunks."""

    __slots__ = ("_aad", "_aead", "_prefix", "index")

    def __init__(self, file_key: _Bytes, nonce_prefix: bytes, header: bytes) -> None:
        self._aead = AESGCM(bytes(file_key))
        self._prefix = nonce_prefix
        self._aad = header
        self.index = 0

    def _nonce(self, index: int, final: bool) -> bytes:
        if index >= _MAX_CHUNKS:
            raise StreamError("attachment stream has more than 2**32 chunks")
        return self._prefix + _NONCE_TAIL.pack(index, 1 if final else 0)

    def seal(self, chunk: _Bytes, final: bool) -> bytes:
        sealed = self._aead.encrypt(self._nonce(self.index, final), chunk, self._aad)
        self.index += 1
        return sealed

    def seal_middle(self, chunk: _Bytes) -> bytes:
        return self.seal(chunk, final=False)

    def open_middle(self, chunk: _Bytes) -> bytes:
        return self.open(chunk, final=False)

    def open(self, chunk: _Bytes, final: bool) -> bytes:
        """The plaintext of the next chunk, or :class:`StreamError` saying what went wrong."""
        try:
            plain = self._aead.decrypt(self._nonce(self.index, final), chunk, self._aad)
        except InvalidTag as exc:
            raise StreamError(self._diagnose(chunk, final)) from exc
        self.index += 1
        return plain

    def _opens_as(self, chunk: _Bytes, final: bool) -> bool:
        try:
            self._aead.decrypt(self._nonce(self.index, final), chunk, self._aad)
        except InvalidTag:
            return False
        return True

    def _diagnose(self, chunk: _Bytes, final: bool) -> str:
        """Names the failure: a final chunk with data after it, a missing final chunk, or else."""
        if not final and self._opens_as(chunk, final=True):
            return "attachment stream extended: data follows the final chunk"
        if final and self._opens_as(chunk, final=False):
            return "attachment stream truncated: no final chunk"
        return (
            f"attachment chunk {self.index} failed authentication "
            "(tampered, reordered, truncated or wrong key)"
        )


class _Chunker:
    """Cuts a byte stream into chunks of ``size`` bytes, holding back the last one.

    Only the end of the stream tells whether the latest chunk is the final one, so a full chunk
    is processed only once more data follows it. Full chunks inside the data passed to
    :meth:`feed` are processed in place; only a partial chunk is copied, into one buffer
    allocated once.
    """

    __slots__ = ("_buf", "_fill", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buf = memoryview(bytearray(size))
        self._fill = 0

    def feed(self, view: memoryview, process: Callable[[_Bytes], bytes]) -> list[bytes]:
        """Results of ``process`` on each chunk of ``view`` that more data follows."""
        out: list[bytes] = []
        if self._fill:
            room = self._size - self._fill
            if len(view) <= room:
                self._hold(view)
                return out
            self._hold(view[:room])
            view = view[room:]
            out.append(process(self._buf))
            self._fill = 0
        while len(view) > self._size:
            out.append(process(view[: self._size]))
            view = view[self._size :]
        self._hold(view)
        return out

    def rest(self) -> memoryview:
        """The held-back bytes: the final chunk once the stream has ended."""
        return self._buf[: self._fill]

    def _hold(self, view: memoryview) -> None:
        end = self._fill + len(view)
        self._buf[self._fill : end] = view
        self._fill = end


def _as_view(data: _Bytes) -> memoryview:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("expected a bytes-like object")
    return memoryview(data).cast("B")


# --- encryptor ---------------------------------------------------------------------------------


class AttachmentEncryptor:
    """Encrypts one attachment incrementally; holds at most one plaintext chunk.

    Call :meth:`update` with the plaintext in pieces of any size, then :meth:`finalize` once;
    concatenate everything they return. Afterwards :attr:`size`, :attr:`plaintext_sha256`,
    :attr:`ciphertext_sha256` and :attr:`ciphertext_size` describe the attachment.
    """

    __slots__ = (
        "_chunker",
        "_cipher",
        "_ct_hash",
        "_ct_size",
        "_done",
        "_header",
        "_pt_hash",
        "_size",
    )

    def __init__(
        self,
        file_key: _Bytes,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        nonce_prefix: bytes | None = None,
    ) -> None:
        _check_key(file_key)
        _check_chunk_size(chunk_size)
        prefix = os.urandom(_NONCE_PREFIX_SIZE) if nonce_prefix is None else bytes(nonce_prefix)
        if len(prefix) != _NONCE_PREFIX_SIZE:
            raise AttachmentError(f"attachment nonce prefix must be {_NONCE_PREFIX_SIZE} bytes")
        header = _encode_header(chunk_size, prefix)
        self._cipher = _ChunkCipher(file_key, prefix, header)
        self._header: bytes | None = header
        self._chunker = _Chunker(chunk_size)
        self._pt_hash = hashlib.sha256()
        self._ct_hash = hashlib.sha256()
        self._size = 0
        self._ct_size = 0
        self._done = False

    def update(self, data: _Bytes) -> bytes:
        """Ciphertext for the chunks completed so far (the stream header comes first)."""
        self._require_open()
        view = _as_view(data)
        self._pt_hash.update(view)
        self._size += len(view)
        return self._emit(self._chunker.feed(view, self._cipher.seal_middle))

    def finalize(self) -> bytes:
        """The rest of the ciphertext, ending with the chunk flagged final."""
        self._require_open()
        final = self._cipher.seal(self._chunker.rest(), final=True)
        self._done = True
        return self._emit([final])

    @property
    def size(self) -> int:
        """Plaintext length in bytes."""
        self._require_done()
        return self._size

    @property
    def plaintext_sha256(self) -> bytes:
        """SHA-256 of the whole plaintext."""
        self._require_done()
        return self._pt_hash.digest()

    @property
    def ciphertext_sha256(self) -> bytes:
        """SHA-256 of the whole ciphertext stream, header included."""
        self._require_done()
        return self._ct_hash.digest()

    @property
    def ciphertext_size(self) -> int:
        """Ciphertext stream length in bytes, header included."""
        self._require_done()
        return self._ct_size

    def _emit(self, parts: list[bytes]) -> bytes:
        if self._header is not None:
            parts.insert(0, self._header)
            self._header = None
        for part in parts:
            self._ct_hash.update(part)
            self._ct_size += len(part)
        return b"".join(parts)

    def _require_open(self) -> None:
        if self._done:
            raise AttachmentError("attachment encryptor: already finalized")

    def _require_done(self) -> None:
        if not self._done:
            raise AttachmentError(_NOT_FINALIZED.format("encryptor"))


# --- decryptor ---------------------------------------------------------------------------------


class AttachmentDecryptor:
    """Decrypts one attachment stream incrementally; holds at most one ciphertext chunk.

    :meth:`update` releases the plaintext of each chunk once it is authenticated and known not
    to be the last; :meth:`finalize` opens the last one and raises :class:`StreamError` if the
    stream was truncated, extended, reordered or tampered with. Plaintext released before a
    failure must be discarded; :func:`decrypt_file` checks the ciphertext hash first so that a
    stream that does not match its metadata releases nothing. After a failure every further
    call raises :class:`StreamError`.
    """

    __slots__ = ("_chunker", "_cipher", "_file_key", "_hash", "_header", "_size", "_state")

    def __init__(self, file_key: _Bytes) -> None:
        _check_key(file_key)
        self._file_key = bytes(file_key)
        self._header = bytearray()
        self._cipher: _ChunkCipher | None = None
        self._chunker: _Chunker | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._state = _OPEN

    def update(self, data: _Bytes) -> bytes:
        """Plaintext of the chunks authenticated so far."""
        self._require_open()
        try:
            return self._update(_as_view(data))
        except CryptoError:
            self._state = _FAILED
            raise

    def finalize(self) -> bytes:
        """Plaintext of the final chunk, after checking that the stream ends exactly there."""
        self._require_open()
        try:
            plain = self._finalize()
        except CryptoError:
            self._state = _FAILED
            raise
        self._state = _DONE
        return plain

    @property
    def size(self) -> int:
        """Plaintext length in bytes."""
        self._require_done()
        return self._size

    @property
    def plaintext_sha256(self) -> bytes:
        """SHA-256 of the whole plaintext."""
        self._require_done()
        return self._hash.digest()

    def _update(self, view: memoryview) -> bytes:
        if self._cipher is None:
            view = self._absorb_header(view)
        if self._cipher is None or self._chunker is None:
            return b""
        return self._release(self._chunker.feed(view, self._cipher.open_middle))

    def _finalize(self) -> bytes:
        if self._cipher is None or self._chunker is None:
            raise StreamError("attachment stream truncated: incomplete header")
        rest = self._chunker.rest()
        if len(rest) < _TAG_SIZE:
            raise StreamError("attachment stream truncated: no final chunk")
        return self._release([self._cipher.open(rest, final=True)])

    def _absorb_header(self, view: memoryview) -> memoryview:
        """Moves header bytes out of ``view``; starts the cipher once the header is complete.

        Two rounds: the label's 4-byte length prefix first, which gives the header's length.
        """
        for _ in range(2):
            have = len(self._header)
            total = 4 if have < 4 else _header_length(self._header)
            self._header += view[: total - have]
            view = view[total - have :]
            if len(self._header) < total:
                return view
        header = bytes(self._header)
        chunk_size, prefix = _decode_header(header)
        self._cipher = _ChunkCipher(self._file_key, prefix, header)
        self._chunker = _Chunker(chunk_size + _TAG_SIZE)
        return view

    def _release(self, parts: list[bytes]) -> bytes:
        for part in parts:
            self._hash.update(part)
            self._size += len(part)
        return b"".join(parts)

    def _require_open(self) -> None:
        if self._state == _DONE:
            raise AttachmentError("attachment decryptor: already finalized")
        if self._state == _FAILED:
            raise StreamError("attachment stream: already failed authentication")

    def _require_done(self) -> None:
        if self._state != _DONE:
            raise AttachmentError(_NOT_FINALIZED.format("decryptor"))


# --- metadata ----------------------------------------------------------------------------------


def _check_digest(value: object, name: str) -> None:
    if not isinstance(value, bytes) or len(value) != _HASH_SIZE:
        raise AttachmentError(f"attachment metadata: {name} must be {_HASH_SIZE} bytes")


def _check_length(value: object, name: str) -> None:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise AttachmentError(f"attachment metadata: {name} must be an integer in [0, 2**64)")


def _check_text(value: object, name: str, max_len: int) -> None:
    if not isinstance(value, str):
        raise AttachmentError(f"attachment metadata: {name} must be text")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AttachmentError(f"attachment metadata: {name} is not valid Unicode") from exc
    if len(encoded) > max_len or _CONTROL_CHARS.search(value):
        raise AttachmentError(
            f"attachment metadata: {name} must be at most {max_len} bytes without control "
            "characters"
        )


_JSON_FIELDS: dict[str, type] = {
    "file_key": str,
    "ciphertext_sha256": str,
    "plaintext_sha256": str,
    "size": int,
    "ciphertext_size": int,
    "media_type": str,
    "file_name": str,
}


@dataclass(frozen=True, slots=True, repr=False)
class FileMeta:
    """What a message says about one attachment: enough to fetch, verify and decrypt it.

    It travels inside the signed, encrypted message; its repr hides the file key, the file name
    and the plaintext hash.
    """

    file_key: bytes
    ciphertext_sha256: bytes
    plaintext_sha256: bytes
    size: int
    ciphertext_size: int
    media_type: str
    file_name: str

    def __post_init__(self) -> None:
        if not isinstance(self.file_key, bytes) or len(self.file_key) != FILE_KEY_SIZE:
            raise AttachmentError(f"attachment metadata: file_key must be {FILE_KEY_SIZE} bytes")
        _check_digest(self.ciphertext_sha256, "ciphertext_sha256")
        _check_digest(self.plaintext_sha256, "plaintext_sha256")
        _check_length(self.size, "size")
        _check_length(self.ciphertext_size, "ciphertext_size")
        _check_text(self.media_type, "media_type", _MAX_MEDIA_TYPE)
        _check_text(self.file_name, "file_name", _MAX_FILE_NAME)

    def __repr__(self) -> str:
        return (
            f"FileMeta(file_key=***, ciphertext_sha256={self.ciphertext_sha256.hex()}, "
            f"size={self.size}, ciphertext_size={self.ciphertext_size}, "
            f"media_type={self.media_type!r})"
        )

    def to_bytes(self) -> bytes:
        """The strict binary encoding, labelled ``opseal/v1/attachment-meta``."""
        return (
            Writer(_META_LABEL)
            .blob(self.file_key)
            .blob(self.ciphertext_sha256)
            .blob(self.plaintext_sha256)
            .u64(self.size)
            .u64(self.ciphertext_size)
            .text(self.media_type)
            .text(self.file_name)
            .finish()
        )

    @classmethod
    def from_bytes(cls, data: _Bytes) -> FileMeta:
        """Decodes :meth:`to_bytes`; any malformed input raises a :class:`CryptoError`."""
        reader = Reader(bytes(data), _META_LABEL, what="attachment metadata")
        meta = cls(
            file_key=reader.blob(exact=FILE_KEY_SIZE, field="file_key"),
            ciphertext_sha256=reader.blob(exact=_HASH_SIZE, field="ciphertext_sha256"),
            plaintext_sha256=reader.blob(exact=_HASH_SIZE, field="plaintext_sha256"),
            size=reader.u64("size"),
            ciphertext_size=reader.u64("ciphertext_size"),
            media_type=reader.text(max_len=_MAX_MEDIA_TYPE, field="media_type"),
            file_name=reader.text(max_len=_MAX_FILE_NAME, field="file_name"),
        )
        reader.finish()
        return meta

    def to_json(self) -> dict[str, str | int]:
        """A JSON-ready dict; byte fields are unpadded base64url."""
        return {
            "file_key": b64e(self.file_key),
            "ciphertext_sha256": b64e(self.ciphertext_sha256),
            "plaintext_sha256": b64e(self.plaintext_sha256),
            "size": self.size,
            "ciphertext_size": self.ciphertext_size,
            "media_type": self.media_type,
            "file_name": self.file_name,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FileMeta:
        """Decodes :meth:`to_json` strictly: exactly its keys, each of the right type."""
        if not isinstance(obj, Mapping) or set(obj) != set(_JSON_FIELDS):
            raise DecodeError(
                f"attachment metadata: expected exactly the keys {', '.join(_JSON_FIELDS)}"
            )
        for name, kind in _JSON_FIELDS.items():
            if type(obj[name]) is not kind:
                raise DecodeError(f"attachment metadata: {name} must be {kind.__name__}")
        return cls(
            file_key=b64d(obj["file_key"], field="file_key", max_len=FILE_KEY_SIZE),
            ciphertext_sha256=b64d(
                obj["ciphertext_sha256"], field="ciphertext_sha256", max_len=_HASH_SIZE
            ),
            plaintext_sha256=b64d(
                obj["plaintext_sha256"], field="plaintext_sha256", max_len=_HASH_SIZE
            ),
            size=obj["size"],
            ciphertext_size=obj["ciphertext_size"],
            media_type=obj["media_type"],
            file_name=obj["file_name"],
        )


# --- file helpers ------------------------------------------------------------------------------


def _blocks(src: BinaryIO, size: int) -> Iterator[_Bytes]:
    """``src`` to its end in pieces of at most ``size`` bytes.

    Reads into one reused buffer when ``src`` supports ``readinto``: each piece is only valid
    until the next one is read.
    """
    readinto = getattr(src, "readinto", None)
    if readinto is None:
        while block := src.read(size):
            yield block
        return
    view = memoryview(bytearray(size))
    while count := readinto(view):
        yield view[:count]


def _write(dst: BinaryIO, data: bytes) -> None:
    if data:
        dst.write(data)


def encrypt_file(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    media_type: str,
    file_name: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> FileMeta:
    """Encrypts ``src`` to ``dst`` under a fresh file key and returns the attachment's metadata.

    Reads ``src`` to its end in chunk-sized pieces, so memory stays bounded for any size.
    ``random_bytes`` supplies the file key and nonce prefix (tests pass a deterministic one).
    """
    _check_text(media_type, "media_type", _MAX_MEDIA_TYPE)
    _check_text(file_name, "file_name", _MAX_FILE_NAME)  # before any work
    file_key = random_bytes(FILE_KEY_SIZE)
    encryptor = AttachmentEncryptor(
        file_key, chunk_size=chunk_size, nonce_prefix=random_bytes(_NONCE_PREFIX_SIZE)
    )
    for block in _blocks(src, chunk_size):
        _write(dst, encryptor.update(block))
    _write(dst, encryptor.finalize())
    return FileMeta(
        file_key=file_key,
        ciphertext_sha256=encryptor.ciphertext_sha256,
        plaintext_sha256=encryptor.plaintext_sha256,
        size=encryptor.size,
        ciphertext_size=encryptor.ciphertext_size,
        media_type=media_type,
        file_name=file_name,
    )


def verify_ciphertext(src: BinaryIO, meta: FileMeta) -> None:
    """Reads ``src`` to its end; :class:`AttachmentError` unless its size and SHA-256 match."""
    digest = hashlib.sha256()
    size = 0
    for block in _blocks(src, _READ_SIZE):
        size += len(block)
        if size > meta.ciphertext_size:
            raise AttachmentError("attachment ciphertext is longer than its metadata says")
        digest.update(block)
    if size != meta.ciphertext_size:
        raise AttachmentError("attachment ciphertext is shorter than its metadata says")
    if not hmac.compare_digest(digest.digest(), meta.ciphertext_sha256):
        raise AttachmentError("attachment ciphertext SHA-256 differs from its metadata")


def decrypt_file(src: BinaryIO, dst: BinaryIO, meta: FileMeta) -> None:
    """Decrypts the seekable stream ``src`` into ``dst`` after checking it against ``meta``.

    A first pass checks the ciphertext size and SHA-256 and writes nothing if they differ;
    ``src`` is then rewound to where it started and decrypted chunk by chunk. The plaintext size
    and SHA-256 are checked at the end: on any error, discard what reached ``dst``.
    """
    start = src.tell()
    verify_ciphertext(src, meta)
    src.seek(start)
    decryptor = AttachmentDecryptor(meta.file_key)
    for block in _blocks(src, _READ_SIZE):
        _write(dst, decryptor.update(block))
    _write(dst, decryptor.finalize())
    if decryptor.size != meta.size:
        raise AttachmentError("attachment plaintext size differs from its metadata")
    if not hmac.compare_digest(decryptor.plaintext_sha256, meta.plaintext_sha256):
        raise AttachmentError("attachment plaintext SHA-256 differs from its metadata")
