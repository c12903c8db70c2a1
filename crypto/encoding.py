"""The explicit binary encoding of everything OpSeal signs or authenticates (design §5).

An encoding starts with a purpose label such as ``opseal/v1/cert`` (itself length-prefixed),
then each field in a fixed order: byte strings and text as a 4-byte big-endian length and
the bytes, integers as fixed-width big-endian, lists as a 4-byte count and their items.
The :class:`Reader` is strict: every length is bounded, booleans are 0 or 1, text is UTF-8,
trailing bytes are refused, and a label of another protocol version raises
:class:`UnsupportedVersion`. Every failure is a :class:`DecodeError`.

Wire formats (JSON) carry these encodings as unpadded base64url (:func:`b64e`, :func:`b64d`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import string
import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

from .errors import DecodeError, UnsupportedVersion

__all__ = [
    "MAX_BYTES",
    "PROTOCOL_VERSION",
    "Reader",
    "Writer",
    "b64d",
    "b64e",
    "decode_all",
    "label",
    "length_prefixed",
    "sha256",
]

T = TypeVar("T")

PROTOCOL_VERSION = "v1"
_PREFIX = b"opseal/"
_LABEL_RE = re.compile(rb"^opseal/(v[0-9]+)/[a-z0-9][a-z0-9/-]{0,62}$")
MAX_BYTES = 64 * 1024 * 1024
"""Upper bound for any single length-prefixed field unless the caller says less."""
_MAX_LIST = 1_000_000

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def label(name: str) -> bytes:
    """The purpose label ``opseal/v1/<name>`` for a signature, KDF call or structure."""
    encoded = _PREFIX + PROTOCOL_VERSION.encode() + b"/" + name.encode("ascii")
    if not _LABEL_RE.match(encoded):
        raise ValueError(f"invalid label name {name!r}")
    return encoded


def sha256(*parts: bytes) -> bytes:
    """SHA-256 over the concatenation of ``parts``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def length_prefixed(value: bytes) -> bytes:
    """One field as the encoding writes it: a 4-byte big-endian length, then the bytes.

    Signed structures append their signature this way after the bytes it covers.
    """
    return _U32.pack(len(value)) + value


def b64e(data: bytes) -> str:
    """Unpadded base64url text of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64URL_VALUES = {c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase)}
_B64URL_VALUES |= {c: 52 + i for i, c in enumerate(string.digits + "-_")}
_UNUSED_BITS = {0: 0, 2: 0x0F, 3: 0x03}
"""The low bits of the last character that a text of length 2 or 3 modulo 4 leaves unused:
canonical text has them zero (what re-encoding the decoded bytes gives)."""
# base64url to the standard alphabet for binascii's strict decoder; '+', '/' and '=' become a
# byte outside it, so that they are refused as they are in base64url text
_FROM_URLSAFE = bytes.maketrans(b"-_+/=", b"+/***")


def b64d(text: str, *, field: str = "value", max_len: int = MAX_BYTES) -> bytes:
    """Bytes of unpadded base64url ``text``; a :class:`DecodeError` naming ``field`` if not."""
    data = _b64d_canonical(text, max_len)
    return data if data is not None else _b64d_checked(text, field, max_len)


def _b64d_canonical(text: str, max_len: int) -> bytes | None:
    """The bytes of ``text`` if it is canonical unpadded base64url, else None (a fast path for
    bodies of a few kilobytes; :func:`_b64d_checked` says what is wrong with the rest)."""
    if not isinstance(text, str):
        return None
    if not text:
        return b""
    rest = len(text) % 4
    if rest == 1 or len(text) > (max_len * 4 + 2) // 3:
        return None
    try:
        raw = text.encode("ascii")
        data = binascii.a2b_base64(
            raw.translate(_FROM_URLSAFE) + b"=="[: -rest % 4], strict_mode=True
        )
    except (UnicodeEncodeError, binascii.Error):
        return None
    return None if _B64URL_VALUES[text[-1]] & _UNUSED_BITS[rest] else data


def _b64d_checked(text: str, field: str, max_len: int) -> bytes:
    """:func:`b64d` step by step, naming what is wrong."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise DecodeError(f"{field}: expected unpadded base64url text")
    rest = len(text) % 4
    if rest == 1 or len(text) > (max_len * 4 + 2) // 3:
        raise DecodeError(f"{field}: base64url text has an impossible length")
    if rest and _B64URL_VALUES[text[-1]] & _UNUSED_BITS[rest]:
        raise DecodeError(f"{field}: non-canonical base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-rest % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"{field}: invalid base64url") from exc


class Writer:
    """Builds one encoding: the label first, then fields in the order they are written."""

    __slots__ = ("_parts",)

    def __init__(self, purpose: bytes) -> None:
        self._parts: list[bytes] = []
        self.blob(purpose)

    def blob(self, value: bytes) -> Writer:
        if len(value) > MAX_BYTES:
            raise ValueError("field too long to encode")
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(bytes(value))
        return self

    def text(self, value: str) -> Writer:
        return self.blob(value.encode("utf-8"))

    def u8(self, value: int) -> Writer:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def bool(self, value: bool) -> Writer:
        return self.u8(1 if value else 0)

    def optional_bytes(self, value: bytes | None) -> Writer:
        self.bool(value is not None)
        if value is not None:
            self.blob(value)
        return self

    def list(self, items: Iterable[T], write: Callable[[Writer, T], object]) -> Writer:
        items = list(items)
        self.u32(len(items))
        for item in items:
            write(self, item)
        return self

    def text_map(self, mapping: dict[str, str]) -> Writer:
        """A string-to-string map, written in sorted key order so equal maps encode equally."""
        return self.list(sorted(mapping.items()), lambda w, kv: w.text(kv[0]).text(kv[1]))

    def finish(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads one encoding strictly; every failure raises :class:`DecodeError`."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, purpose: bytes, *, what: str = "") -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("expected bytes")
        self._data = bytes(data)
        self._pos = 0
        self._what = what or purpose.decode("ascii", "replace")
        found = self.blob(max_len=80, field="label")
        if found != purpose:
            match = _LABEL_RE.match(found)
            wanted = _LABEL_RE.match(purpose)
            if match and wanted and match.group(1) != wanted.group(1):
                raise UnsupportedVersion(
                    f"{self._what}: protocol version {match.group(1).decode()} is not supported"
                )
            raise DecodeError(f"{self._what}: unexpected label")

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"{self._what}: truncated at field {field!r}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def blob(
        self, *, max_len: int = MAX_BYTES, exact: int | None = None, field: str = "bytes"
    ) -> bytes:
        (n,) = _U32.unpack(self._take(4, field))
        if exact is not None and n != exact:
            raise DecodeError(f"{self._what}: field {field!r} must be {exact} bytes, got {n}")
        if n > max_len:
            raise DecodeError(f"{self._what}: field {field!r} longer than {max_len} bytes")
        return self._take(n, field)

    def text(self, *, max_len: int = 4096, field: str = "text") -> str:
        raw = self.blob(max_len=max_len, field=field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{self._what}: field {field!r} is not UTF-8") from exc

    def u8(self, field: str = "u8") -> int:
        value: int = _U8.unpack(self._take(1, field))[0]
        return value

    def u16(self, field: str = "u16") -> int:
        value: int = _U16.unpack(self._take(2, field))[0]
        return value

    def u32(self, field: str = "u32") -> int:
        value: int = _U32.unpack(self._take(4, field))[0]
        return value

    def u64(self, field: str = "u64") -> int:
        value: int = _U64.unpack(self._take(8, field))[0]
        return value

    def bool(self, field: str = "bool") -> bool:
        value = self.u8(field)
        if value > 1:
            raise DecodeError(f"{self._what}: field {field!r} must be 0 or 1")
        return value == 1

    def optional_bytes(self, *, max_len: int = MAX_BYTES, field: str = "bytes") -> bytes | None:
        return self.blob(max_len=max_len, field=field) if self.bool(field) else None

    def list(
        self, read: Callable[[Reader], T], *, max_count: int = _MAX_LIST, field: str = "list"
    ) -> list[T]:
        count = self.u32(field)
        if count > max_count:
            raise DecodeError(f"{self._what}: field {field!r} has more than {max_count} items")
        return [read(self) for _ in range(count)]

    def text_map(self, *, max_count: int = 64, field: str = "map") -> dict[str, str]:
        pairs = self.list(
            lambda r: (r.text(max_len=256, field=field), r.text(max_len=4096, field=field)),
            max_count=max_count,
            field=field,
        )
        keys = [k for k, _ in pairs]
        if keys != sorted(set(keys)):
            raise DecodeError(f"{self._what}: field {field!r} keys must be sorted and unique")
        return dict(pairs)

    def consumed(self) -> bytes:
        """The bytes read so far: what a trailing signature covers."""
        return self._data[: self._pos]

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{self._what}: {len(self._data) - self._pos} trailing bytes")


def decode_all(data: bytes, purpose: bytes, what: str, read: Callable[[Reader], T]) -> T:
    """Decode ``data`` with ``read``, refusing a wrong label and any trailing bytes."""
    reader = Reader(data, purpose, what=what)
    value = read(reader)
    reader.finish()
    return value
