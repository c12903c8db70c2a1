"""Decoding the server's answers through the wire types, every failure a
:class:`~opseal.client.errors.MalformedAnswerError`.

An answer is decoded strictly (:func:`opseal.wire.decode.decode_body`: every field present,
of its type, within its limits, no unknown field) and then every base64url field is checked
to be canonical, so whoever reads it can turn it into bytes without an error of its own. The
error names the request and the field, never a value the server sent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec
from msgspec import inspect

from opseal.wire.decode import WireError, decode_body
from opseal.wire.scalars import B64_PATTERN

from .errors import MalformedAnswerError

__all__ = ["decode_answer", "is_canonical_b64"]

T = TypeVar("T")

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE = {c: n for n, c in enumerate(_ALPHABET)}
Check = Callable[[Any], str | None]
"""Returns the path of the first non-canonical base64url text in a value, or None."""


def decode_answer(raw: bytes, type_: type[T], where: str, status: int) -> T:
    """``raw`` decoded as ``type_``; :class:`MalformedAnswerError` says which field is wrong."""
    try:
        value = decode_body(raw, type_)
    except WireError as exc:
        raise _malformed(where, status, exc.message, exc.field) from exc
    bad = _checker(cast(Any, type_))(value)
    if bad is not None:
        raise _malformed(where, status, f"field {bad!r}: not canonical base64url", bad)
    return value


def _malformed(where: str, status: int, message: str, field: str | None) -> MalformedAnswerError:
    details = {} if field is None else {"field": field}
    return MalformedAnswerError(f"{where}: {message}", status=status, details=details)


def is_canonical_b64(text: str) -> bool:
    """Whether ``text`` (already matching the base64url alphabet) is canonical and unpadded:
    no impossible length, no stray bits in its last character."""
    rest = len(text) % 4
    if rest == 1:
        return False
    if rest == 0:
        return True
    return _VALUE.get(text[-1], 0) & (0x0F if rest == 2 else 0x03) == 0


@functools.cache
def _checker(type_: Any) -> Check:  # a type, or a union of them
    """A function finding non-canonical base64url in values of ``type_`` (built once)."""
    return _for(inspect.type_info(type_))


def _for(kind: inspect.Type) -> Check:
    while isinstance(kind, inspect.Metadata):
        kind = kind.type
    if isinstance(kind, inspect.StrType) and kind.pattern == B64_PATTERN:
        return lambda v: None if is_canonical_b64(v) else ""
    if isinstance(kind, inspect.UnionType):
        return _union(kind.types)
    if isinstance(kind, inspect.ListType):
        return _items(_for(kind.item_type))
    if isinstance(kind, inspect.StructType):
        return _struct([(f.name, _for(f.type)) for f in kind.fields])
    return _nothing


def _nothing(value: Any) -> str | None:
    return None


def _union(kinds: tuple[inspect.Type, ...]) -> Check:
    """Members of a union are told apart by their Python type once decoded."""
    by_type = {_python_type(k): _for(k) for k in kinds}
    live = {t: c for t, c in by_type.items() if c is not _nothing}
    if not live:
        return _nothing
    return lambda value: live[type(value)](value) if type(value) in live else None


def _python_type(kind: inspect.Type) -> type | None:
    while isinstance(kind, inspect.Metadata):
        kind = kind.type
    if isinstance(kind, inspect.StructType):
        return kind.cls
    simple = {inspect.StrType: str, inspect.ListType: list, inspect.DictType: dict}
    return simple.get(type(kind))


def _items(item: Check) -> Check:
    if item is _nothing:
        return _nothing

    def check(value: list[Any]) -> str | None:
        for n, v in enumerate(value):
            if (bad := item(v)) is not None:
                return f"[{n}]{bad}"
        return None

    return check


def _struct(fields: list[tuple[str, Check]]) -> Check:
    live = [(name, c) for name, c in fields if c is not _nothing]
    if not live:
        return _nothing

    def check(value: msgspec.Struct) -> str | None:
        for name, c in live:
            if (bad := c(getattr(value, name))) is not None:
                return f"{name}{'.' if bad and bad[0] != '[' else ''}{bad}"
        return None

    return check
