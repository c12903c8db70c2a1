"""The versioned JSON Schema of seizure records (design §8), shipped in the package.

:data:`SCHEMA` is ``schemas/seizure-record.v1.json``. :func:`problems` validates a record with
the ``jsonschema`` library and lists every (field, reason) at fault, the field written
``goods[1].category``; :func:`~.content.seizure` raises the first. Numbers must be finite and
integers real integers (not ``1.0``, not booleans), which JSON Schema alone leaves open.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
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
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
    if _validator().is_valid(record):
        return []
    return [_explain(e) for e in _errors(record)]
