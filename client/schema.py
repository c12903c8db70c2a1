"""The versioned JSON Schema of seizure records (design §8), shipped in the package.

:data:`SCHEMA` is ``schemas/seizure-record.v1.json``. :func:`problems` validates a record with
the ``jsonschema`` library and lists every (field, reason) at fault, the field written
``goods[1].category``; :func:`~.content.seizure` raises the first. Numbers must be finite and
integers real integers (not ``1.0``, not booleans), which JSON Schema alone leaves open. A
record is first checked by the schema compiled into plain checks (see below), which only ever
accepts what jsonschema accepts; jsonschema has the last word on everything else.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema is imported by the first validation: `opseal --help` skips it
    from jsonschema import ValidationError

__all__ = [
    "SCHEMA",
    "SCHEMA_FILE",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "enum",
    "field_path",
    "prepare",
    "problems",
    "schema",
]

SCHEMA_VERSION = 1
SCHEMA_FILE = f"seizure-record.v{SCHEMA_VERSION}.json"


def _is_number(_checker: Any, value: object) -> bool:
    """JSON's numbers: any integer (10**400 included, so that ``minimum`` applies to it: a
    keyword applies only to values of its type) and finite floats (json.loads gives NaN)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _is_integer(_checker: Any, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def schema() -> dict[str, Any]:
    """The seizure record schema, as shipped (a fresh parse, cached)."""
    text = files("opseal.client").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


SCHEMA = schema()
SCHEMA_ID: str = SCHEMA["$id"]


def enum(name: str) -> tuple[str, ...]:
    """The allowed values of a record field (``transport_mode``, ``location_type``...)."""
    return tuple(SCHEMA["properties"][name]["enum"])


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by its definition: the same schema, checked
    about twice as fast (resolving references dominates the cost of a record)."""
    if isinstance(node, list):
        return [_inlined(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inlined(v, defs) for k, v in node.items() if k not in ("$ref", "$defs")}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        out = {**_inlined(defs[ref.removeprefix("#/$defs/")], defs), **out}
    return out


def prepare() -> None:
    """Load jsonschema and build the validator now. Its import reads files, so async code calls
    this in a thread (:meth:`~.client.Client.open` does) rather than on first use on the loop."""
    _validator()


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker, validators

    extended = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many(
            {"number": _is_number, "integer": _is_integer}
        ),
    )
    extended.check_schema(SCHEMA)
    return extended(_inlined(SCHEMA, SCHEMA["$defs"]), format_checker=FormatChecker(("date",)))


def field_path(path: Sequence[str | int]) -> str:
    """``["goods", 1, "category"]`` as ``goods[1].category`` (``record`` for the root)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "record"


def _explain(error: ValidationError) -> tuple[str, str]:
    """(field, reason) for people."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        return field_path([*path, missing]), "required, but missing"
    if error.validator == "additionalProperties":
        return field_path(path), f"unknown field ({error.message})"
    if error.validator == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)  # type: ignore[union-attr]
        return field_path(path), f"{error.instance!r} is not one of {choices}"
    if error.validator == "pattern" and path and path[-1] in ("reporting_country",):
        return field_path(path), f"expected ISO 3166 alpha-2 (e.g. FR), got {error.instance!r}"
    if error.validator in ("pattern", "format") and path == ["seizure_date"]:
        return field_path(path), f"expected a date as YYYY-MM-DD, got {error.instance!r}"
    return field_path(path), str(error.message)


def _errors(record: object) -> Iterator[ValidationError]:
    return iter(sorted(_validator().iter_errors(record), key=lambda e: list(map(str, e.path))))


def problems(record: object) -> list[tuple[str, str]]:
    """Every (field, reason) the schema refuses in ``record``; empty when it is valid."""
    if _quick_valid(record) or _validator().is_valid(record):
        return []
    return [_explain(e) for e in _errors(record)]


# -- the schema compiled into plain checks -------------------------------------------------
# A report checks every record against the schema, and jsonschema spends about 150 us on one
# (a thousand small objects per record). The schema's keywords are few; compiled into
# closures they check a record ten times faster. The compiled check only ever says "valid"
# when jsonschema would: it says "not sure" for anything else (and for any keyword it does not
# know, so a schema that grows one falls back to jsonschema entirely), and jsonschema then
# gives the verdict and the reasons. tests/client/test_schema_check.py compares the two.

Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "$comment", "examples", "x-personal-data"}
)
_RE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)  # as jsonschema's "date" format


class _Unsupported(Exception):
    """A schema keyword the compiled check does not know."""


def _quick_valid(record: object) -> bool:
    """True only if ``record`` is valid against the schema (False: ask jsonschema)."""
    check = _compiled()
    try:
        return check is not None and check(record)
    except Exception:  # e.g. a date that does not exist: jsonschema decides (and says why)
        return False


@cache
def _compiled() -> Check | None:
    try:
        return _compile(_inlined(SCHEMA, SCHEMA["$defs"]))
    except _Unsupported:
        return None


def _compile(node: Any) -> Check:
    if not isinstance(node, dict):
        raise _Unsupported("a schema that is not an object")
    checks = [
        _KEYWORDS[key](value, node) if key in _KEYWORDS else _unsupported(key)
        for key, value in node.items()
        if key not in _ANNOTATIONS
    ]

    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        for one in checks:  # noqa: SIM110 -- all() over a generator costs twice as much
            if not one(value):
                return False
        return True

    return check


def _unsupported(key: str) -> Check:
    raise _Unsupported(key)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: _is_integer(None, v),
    "number": lambda v: _is_number(None, v),
}


def _type(names: Any, _node: dict[str, Any]) -> Check:
    names = [names] if isinstance(names, str) else names
    if not names or any(name not in _TYPES for name in names):
        raise _Unsupported("type")
    tests = [_TYPES[name] for name in names]
    return tests[0] if len(tests) == 1 else lambda v: any(test(v) for test in tests)


def _properties(properties: dict[str, Any], _node: dict[str, Any]) -> Check:
    checks = [(name, _compile(sub)) for name, sub in properties.items()]

    def check(v: Any) -> bool:
        if isinstance(v, dict):
            for name, one in checks:
                if name in v and not one(v[name]):
                    return False
        return True

    return check


def _additional(allowed: Any, node: dict[str, Any]) -> Check:
    if allowed is not False:
        raise _Unsupported("additionalProperties other than false")
    names = frozenset(node.get("properties", {}))
    return lambda v: not isinstance(v, dict) or v.keys() <= names


def _required(names: list[str], _node: dict[str, Any]) -> Check:
    needed = frozenset(names)
    return lambda v: not isinstance(v, dict) or v.keys() >= needed


def _enum(values: list[Any], _node: dict[str, Any]) -> Check:
    if not all(isinstance(value, str) for value in values):
        raise _Unsupported("an enum of values other than text")
    allowed = frozenset(values)
    return lambda v: isinstance(v, str) and v in allowed


def _pattern(pattern: str, _node: dict[str, Any]) -> Check:
    search = re.compile(pattern).search
    return lambda v: not isinstance(v, str) or search(v) is not None


def _bound(
    kind: type[str] | type[list[Any]], at_least: bool
) -> Callable[[int, dict[str, Any]], Check]:
    def build(limit: int, _node: dict[str, Any]) -> Check:
        if at_least:
            return lambda v: not isinstance(v, kind) or len(v) >= limit
        return lambda v: not isinstance(v, kind) or len(v) <= limit

    return build


def _items(items: Any, _node: dict[str, Any]) -> Check:
    one = _compile(items)

    def check(v: Any) -> bool:
        if isinstance(v, list):
            for item in v:
                if not one(item):
                    return False
        return True

    return check


def _minimum(limit: float, _node: dict[str, Any]) -> Check:
    return lambda v: not _is_number(None, v) or not v < limit


def _format(name: str, _node: dict[str, Any]) -> Check:
    if name != "date":
        raise _Unsupported(f"format {name}")
    return lambda v: (
        not isinstance(v, str) or bool(_RE_DATE.fullmatch(v) and datetime.date.fromisoformat(v))
    )


_KEYWORDS: dict[str, Callable[[Any, dict[str, Any]], Check]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "enum": _enum,
    "pattern": _pattern,
    "minLength": _bound(str, at_least=True),
    "maxLength": _bound(str, at_least=False),
    "minItems": _bound(list, at_least=True),
    "maxItems": _bound(list, at_least=False),
    "items": _items,
    "minimum": _minimum,
    "format": _format,
}
