"""Seizure records from CSV (design §8), for ``opseal submit seizures FILE``.

One row is one goods line; rows sharing a ``record_id`` form one record with several goods
lines. The columns (names fixed, any order, case-insensitive; ``,``, ``;`` or tab separated;
UTF-8 with or without a byte-order mark):

===================  ========  ==========================================================
column               required  value
===================  ========  ==========================================================
record_id            yes       the administration's own id of the seizure
case_ref             yes       the case the seizure belongs to
reporting_country    yes       ISO 3166 alpha-2 code of the reporting administration
seizure_date         yes       YYYY-MM-DD
transport_mode       yes       postal, express, air-cargo, sea-cargo, road, rail, passenger
ecommerce            yes       yes or no
category             yes       ipr, medicines, medical-devices, other-counterfeit, drugs,
                               precursors, hazardous, other
description          no        free text
quantity_items       no        a whole number, 0 or more
weight_kg            no        a decimal number (``.`` separator), 0 or more; kept to the gram
===================  ========  ==========================================================

Columns that are record-level (``case_ref`` to ``ecommerce``) must agree on every row of a
record. :func:`read_seizures_csv` returns the valid records and one :class:`RowError` per
rejected cell (row number as a spreadsheet shows it: the header is row 1). A record with any
rejected row is withheld entirely, so that once the file is fixed a re-run submits it whole
(its message id is deterministic: a record submitted in part could never be completed). A
file whose header lacks a required column, or has an unknown one, raises
:class:`RecordError` before any row is read.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from . import content
from .errors import ClientError

__all__ = [
    "COLUMNS",
    "RECORD_COLUMNS",
    "REQUIRED_COLUMNS",
    "RecordError",
    "RowError",
    "read_seizures_csv",
    "write_seizures_csv",
]

COLUMNS = (
    "record_id",
    "case_ref",
    "reporting_country",
    "seizure_date",
    "transport_mode",
    "ecommerce",
    "category",
    "description",
    "quantity_items",
    "weight_kg",
)
REQUIRED_COLUMNS = COLUMNS[:7]
RECORD_COLUMNS = ("case_ref", "reporting_country", "seizure_date", "transport_mode", "ecommerce")
_LINE_COLUMNS = ("category", "description", "quantity_items", "weight_kg")
_GRAM = Decimal("0.001")


@dataclass(frozen=True)
class RowError:
    """One rejected cell: its row (header = row 1), column and why."""

    row: int
    column: str
    reason: str
    record_id: str = ""

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


class RecordError(ClientError):
    """Records that cannot be accepted; :attr:`errors` lists every rejected cell."""

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = len(self.errors) - 20
        super().__init__(shown + (f"; and {more} more" if more > 0 else ""))


# -- cell conversions (ValueError says why a cell is refused) --------------------------
def _required(raw: str) -> str:
    if not raw:
        raise ValueError("required, but empty")
    if len(raw) > 128:
        raise ValueError("at most 128 characters")
    return raw


def _country(raw: str) -> str:
    code = raw.upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise ValueError(f"expected an ISO 3166 alpha-2 code such as FR, got {raw!r}")
    return code


def _date(raw: str) -> str:
    try:
        return content.parse_date(raw, "seizure_date")
    except content.ContentError as exc:
        raise ValueError(exc.reason) from exc


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        value = raw.lower().replace("_", "-").replace(" ", "-")
        if value not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return value

    return convert


def _yes_no(raw: str) -> bool:
    if raw.lower() not in ("yes", "no"):
        raise ValueError(f"expected yes or no, got {raw!r}")
    return raw.lower() == "yes"


def _quantity(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.lstrip("-").isdigit():
        raise ValueError(f"expected a whole number of items, got {raw!r}")
    if int(raw) < 0:
        raise ValueError(f"must not be negative, got {raw}")
    return int(raw)


def _weight(raw: str) -> float | None:
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"expected a number of kilograms such as 12.5, got {raw!r}") from exc
    if not value.is_finite():
        raise ValueError(f"expected a number of kilograms such as 12.5, got {raw!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {raw}")
    return float(value.quantize(_GRAM))


_CONVERT: dict[str, Callable[[str], Any]] = {
    "record_id": _required,
    "case_ref": _required,
    "reporting_country": _country,
    "seizure_date": _date,
    "transport_mode": _choice(content.TRANSPORT_MODES),
    "ecommerce": _yes_no,
    "category": _choice(content.CATEGORIES),
    "description": lambda raw: raw or None,
    "quantity_items": _quantity,
    "weight_kg": _weight,
}


# -- rows to records -------------------------------------------------------------------
@dataclass
class _Record:
    first_row: int
    fields: dict[str, Any]
    goods: list[dict[str, Any]] = field(default_factory=list)
    rejected: bool = False

    def payload(self, record_id: str) -> dict[str, Any]:
        return content.seizure({"record_id": record_id, **self.fields, "goods": self.goods})


class _Collector:
    """Groups converted rows into records and gathers every rejected cell."""

    def __init__(self) -> None:
        self.records: dict[str, _Record] = {}
        self.errors: list[RowError] = []

    def add(self, row: int, cells: dict[str, str]) -> None:
        values, errors = _convert(row, cells)
        record_id = values.get("record_id")
        if record_id is None:
            self.errors += errors
            return
        record = self.records.setdefault(record_id, _Record(row, _record_fields(values)))
        errors += _disagreements(row, record, values, record_id)
        self.errors += errors
        record.rejected |= bool(errors)
        if not errors:
            record.goods.append({c: values[c] for c in _LINE_COLUMNS if values[c] is not None})

    def result(self) -> tuple[list[dict[str, Any]], list[RowError]]:
        valid = [r.payload(rid) for rid, r in self.records.items() if not r.rejected]
        return valid, sorted(self.errors, key=lambda e: e.row)


def _convert(row: int, cells: dict[str, str]) -> tuple[dict[str, Any], list[RowError]]:
    values: dict[str, Any] = {}
    errors: list[RowError] = []
    record_id = cells.get("record_id", "")
    for column, convert in _CONVERT.items():
        try:
            values[column] = convert(cells.get(column, ""))
        except ValueError as exc:
            errors.append(RowError(row, column, str(exc), record_id))
    if "" in cells:
        errors.append(RowError(row, "(surplus)", cells[""], record_id))
    return values, errors


def _record_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {c: values[c] for c in RECORD_COLUMNS if c in values}


def _disagreements(
    row: int, record: _Record, values: dict[str, Any], record_id: str
) -> list[RowError]:
    """Record-level cells of a further row that differ from the record's first row."""
    if row == record.first_row:
        return []
    return [
        RowError(
            row,
            column,
            f"{values[column]!r} differs from {record.fields[column]!r} in row "
            f"{record.first_row} of the same record_id",
            record_id,
        )
        for column in RECORD_COLUMNS
        if column in values and column in record.fields and values[column] != record.fields[column]
    ]


# -- the file --------------------------------------------------------------------------
def _header(cells: list[str] | None) -> list[str]:
    names = [c.strip().lower() for c in cells or []]
    named = [n for n in names if n]  # a blank header cell (a trailing separator) names nothing
    errors = [
        RowError(1, column, "required column is missing")
        for column in REQUIRED_COLUMNS
        if column not in names
    ]
    errors += [
        RowError(1, name, f"unknown column (known: {', '.join(COLUMNS)})")
        for name in named
        if name not in COLUMNS
    ]
    if len(set(named)) != len(named):
        errors.append(RowError(1, "header", "a column appears twice"))
    if errors:
        raise RecordError(errors)
    return names


def _rows(reader: Iterator[list[str]], header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Non-blank rows as (row number, cells by column); the complaint about values outside
    the named columns goes under ``""``."""
    for row, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        pairs = list(zip(header, (c.strip() for c in cells), strict=False))
        named = {name: cell for name, cell in pairs if name}
        stray = [n for n, (name, cell) in enumerate(pairs) if not name and cell]
        stray += [n for n in range(len(header), len(cells)) if cells[n].strip()]
        if stray:
            named[""] = f"a value in column {stray[0] + 1}, which the header does not name"
        yield row, named


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_seizures_csv(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[RowError]]:
    """The valid seizure records of a CSV file, and every rejected cell.

    Raises :class:`RecordError` when the header is unusable and :class:`ClientError` when the
    file cannot be read.
    """
    collector = _Collector()
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            delimiter = _delimiter(f.readline())
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter)
            header = _header(next(reader, None))
            for row, cells in _rows(reader, header):
                collector.add(row, cells)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from exc
    return collector.result()


def write_seizures_csv(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` as CSV with :data:`COLUMNS` (one row per goods line); returns rows."""
    rows = 0
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for record in records:
            for line in record["goods"]:
                writer.writerow([_cell(record, line, c) for c in COLUMNS])
                rows += 1
    return rows


def _cell(record: dict[str, Any], line: dict[str, Any], column: str) -> str:
    value = line.get(column) if column in _LINE_COLUMNS else record.get(column)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)
