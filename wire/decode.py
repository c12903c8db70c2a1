"""Decoding wire bodies and query parameters, each failure a :class:`WireError` naming the
field and what was expected.

Decoding is strict (no type coercion in JSON bodies) and checks every ``Meta`` limit and
pattern; query parameters arrive as text, so integers are parsed from it. Text that no
database column can hold (NUL, unpaired surrogates) is refused too. Only failures take the
slow path that builds a message; a good body is decoded once, by msgspec.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from .scalars import B64_PATTERN, UUID_PATTERN

__all__ = ["WireError", "decode_body", "decode_query", "encode", "expectation", "unstorable"]

T = TypeVar("T")

# Text no database column can hold: PostgreSQL refuses NUL, and neither backend can encode
# an unpaired surrogate (JSON's "\ud800" escape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")


class WireError(ValueError):
    """A body or query that does not fit its wire type: ``field`` (or None) and a message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def encode(value: Any) -> bytes:
    """The JSON encoding of a wire structure (or of plain data)."""
    return msgspec.json.encode(value)


def decode_body(raw: bytes, type_: type[T]) -> T:
    """``raw`` JSON decoded as ``type_``; a :class:`WireError` says what is wrong."""
    try:
        value = msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        _check_well_formed(raw)
        raise _explain(str(exc), type_, "field") from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        _check_well_formed(raw)
        raise WireError(
            "body: not strict JSON (unpaired surrogate characters, NaN and Infinity are "
            "not allowed)"
        ) from exc
    _check_text(value, "field")
    return value


def decode_query(query: Mapping[str, str], type_: type[T]) -> T:
    """Query parameters converted to ``type_`` (integers parsed from their text)."""
    try:
        value = msgspec.convert(dict(query), type_, strict=False)
    except msgspec.ValidationError as exc:
        raise _explain(str(exc), type_, "query") from exc
    _check_text(value, "query")
    return value


def _check_well_formed(raw: bytes) -> None:
    """Raise the malformed-JSON error when ``raw`` is not JSON at all."""
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError(f"body: malformed JSON ({exc})") from exc


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a NUL or an unpaired surrogate. ASCII text (known in O(1)) can
    hold only the NUL, which a memchr finds; the regular expression runs on the rest."""
    if text.isascii():
        return "\x00" in text
    return _UNSTORABLE.search(text) is not None


def _check_text(value: Any, where: str) -> None:
    for name in value.__struct_fields__:
        text = getattr(value, name)
        if isinstance(text, str) and unstorable(text):
            raise WireError(
                f"{where} {name!r}: NUL and unpaired surrogate characters are not allowed", name
            )


def _explain(error: str, type_: type[Any], where: str) -> WireError:
    match = _AT.match(error)
    assert match is not None  # the pattern matches any text
    text, path = match.group("text"), match.group("path") or ""
    missing = _MISSING.match(text)
    if missing and not path:
        name = missing.group("name")
        return WireError(f"{where} {name!r}: required, {expectation(type_, name)}", name)
    if not path:
        return WireError(f"body: expected a JSON object ({text})")
    field = path.removeprefix(".")
    name = re.split(r"[.\[]", field, maxsplit=1)[0]
    item = "[" in field and field.index("[") == len(name)
    return WireError(f"{where} {field!r}: {expectation(type_, name, item=item)}", name)


def expectation(type_: type[Any], name: str, *, item: bool = False) -> str:
    """What field ``name`` of ``type_`` must hold (an item of it when ``item``), in words."""
    info = inspect.type_info(type_)
    fields = {f.encode_name: f.type for f in getattr(info, "fields", ())}
    if name not in fields:
        return "not a valid value"
    kind = fields[name]
    if item:
        kind = _unwrap(kind)
        kind = getattr(kind, "item_type", kind)
    return _describe(kind)


def _unwrap(kind: inspect.Type) -> inspect.Type:
    while isinstance(kind, inspect.Metadata):
        kind = kind.type
    return kind


def _describe(kind: inspect.Type) -> str:
    if isinstance(kind, inspect.Metadata) and _is_base64(kind):
        return "expected unpadded base64url text"
    kind = _unwrap(kind)
    if isinstance(kind, inspect.UnionType):
        options = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        if len(options) == 1:
            return f"{_describe(options[0])} or null"
    if isinstance(kind, inspect.StrType):
        return _describe_text(kind)
    if isinstance(kind, inspect.IntType):
        low = "" if kind.ge is None else f" from {kind.ge}"
        high = "" if kind.le is None else f" to {kind.le}"
        return f"expected an integer{low}{high}"
    if isinstance(kind, inspect.BoolType):
        return "expected true or false"
    if isinstance(kind, inspect.LiteralType):
        return "expected one of " + ", ".join(str(v) for v in kind.values)
    if isinstance(kind, inspect.ListType):
        least = "" if not kind.min_length else f" of at least {kind.min_length} item(s)"
        return f"expected a list{least}; each item {_describe(kind.item_type)}"
    return "not a valid value"


def _is_base64(kind: inspect.Metadata) -> bool:
    return (kind.extra_json_schema or {}).get("contentEncoding") == "base64url" and isinstance(
        _unwrap(kind), inspect.StrType
    )


def _describe_text(kind: inspect.StrType) -> str:
    if kind.pattern == UUID_PATTERN:
        return "expected a UUID"
    noun = "unpadded base64url text" if kind.pattern == B64_PATTERN else "a string"
    if kind.min_length == kind.max_length and kind.max_length is not None:
        return f"expected {noun} of exactly {kind.max_length} characters"
    if kind.max_length is not None:
        return f"expected {noun} of {kind.min_length or 0}-{kind.max_length} characters"
    return f"expected {noun}"
