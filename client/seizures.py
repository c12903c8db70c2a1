"""Seizure records from CSV or XLSX (design §8), for ``opseal submit seizures FILE``.

One row is one goods line; rows sharing a ``record_id`` form one record with several goods
lines. The columns (names fixed, any order, case-insensitive; a CSV is ``,``, ``;`` or tab
separated, UTF-8 with or without a byte-order mark; an XLSX file is read from the first
sheet whose row 1 holds every required column — or the sheet named by ``sheet`` — so that an
instructions sheet in front is skipped):

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
hs_code              no        HS code of the goods line, 4 to 10 digits (dots and spaces
                               are dropped: ``3004.90`` is ``300490``)
brand                no        brand of the goods line
rights_holder        no        rights holder of the goods line
reporting_office     no        the reporting office
location_type        no        airport, seaport, land-border, postal-facility, express-hub,
                               inland
detection_method     no        risk-profile, intelligence, random, x-ray, detector-dog, other
platform             no        the e-commerce platform
route_departure      no        ISO 3166 alpha-2 code of the country of departure
route_transit        no        transit countries, alpha-2 codes separated by ``;`` (or ``,``
                               or spaces), in order
route_destination    no        ISO 3166 alpha-2 code of the country of destination
concealment          no        concealment method (free text)
offence              no        offence type
consignor            no        consignor (personal data)
consignee            no        consignee (personal data)
remarks              no        free text
handling             no        the record's handling code, H0 to H3 (see below)
===================  ========  ==========================================================

**Handling codes**: a record's ``handling`` cell wins; a record without one gets the
``--handling`` default (H0 when none is given), raised to ``H2`` when the record carries
personal data (``consignor``, ``consignee``): personal data from a national export is not
further disseminated unless the file says otherwise (design §14).

**Numbers**: ``weight_kg`` uses ``.`` as decimal separator. With ``decimal_comma`` (``opseal
submit seizures --decimal-comma``, never guessed) it uses ``,`` instead, which a ``,``-separated
CSV cannot hold; a cell with a comma and no option is refused with that hint.

The record-level optional columns (``reporting_office`` to ``remarks``) may be given on any
row of a record; where two rows both give one, they must agree. The payload nests
``route_*`` as ``route: {departure, transit, destination}`` and the persons as
``persons: {consignor, consignee}`` (the JSON Schema, :mod:`.schema`).

Columns that are record-level (``case_ref`` to ``ecommerce``) must agree on every row of a
record. :func:`read_seizures` (by the file's suffix), :func:`read_seizures_csv` and
:func:`read_seizures_xlsx` return the valid records and one :class:`RowError` per
rejected cell (row number as a spreadsheet shows it: the header is row 1). A record with any
rejected row is withheld entirely, so that once the file is fixed a re-run submits it whole
(its message id is deterministic: a record submitted in part could never be completed). A
file whose header lacks a required column, or has an unknown one, raises
:class:`RecordError` before any row is read.

Given ``reporting`` (the submitting organisation and its reporting codes in the charter), a
row whose ``reporting_country`` is not among the codes is rejected in that column: every
reader would leave such a record out of the report (design §15 "Provenance").

Long because: the column table above, the CSV and XLSX readers and writers share one list
of columns and one row-error type, and the per-field checks that name a rejected cell.
"""

from __future__ import annotations

import csv
import datetime
import os
import re
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from . import content, schema
from .errors import ClientError

__all__ = [
    "COLUMNS",
    "HANDLING",
    "RECORD_COLUMNS",
    "REQUIRED_COLUMNS",
    "XLSX_SUFFIXES",
    "ReadOptions",
    "RecordError",
    "Reporting",
    "RowError",
    "SeizureFile",
    "load_seizures",
    "read_seizures",
    "read_seizures_csv",
    "read_seizures_xlsx",
    "write_seizures",
    "write_seizures_csv",
    "write_seizures_xlsx",
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
    "hs_code",
    "brand",
    "rights_holder",
    "reporting_office",
    "location_type",
    "detection_method",
    "platform",
    "route_departure",
    "route_transit",
    "route_destination",
    "concealment",
    "offence",
    "consignor",
    "consignee",
    "remarks",
    "handling",
)
REQUIRED_COLUMNS = COLUMNS[:7]
RECORD_COLUMNS = ("case_ref", "reporting_country", "seizure_date", "transport_mode", "ecommerce")
_LINE_COLUMNS = (
    "category",
    "description",
    "quantity_items",
    "weight_kg",
    "hs_code",
    "brand",
    "rights_holder",
)
_OPTIONAL_RECORD_COLUMNS = COLUMNS[COLUMNS.index("reporting_office") :]
_NESTED = {
    "route_departure": ("route", "departure"),
    "route_transit": ("route", "transit"),
    "route_destination": ("route", "destination"),
    "consignor": ("persons", "consignor"),
    "consignee": ("persons", "consignee"),
}
XLSX_SUFFIXES = (".xlsx", ".xlsm")
HANDLING = ("H0", "H1", "H2", "H3")
PERSONAL_DEFAULT = "H2"
"""The handling code a record with personal data gets unless its file says otherwise."""
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
    """Records that cannot be accepted; :attr:`errors` lists every rejected cell, and
    :attr:`where` names the sheet when it is one of a workbook's."""

    def __init__(self, errors: Iterable[RowError], where: str = "") -> None:
        self.errors, self.where = list(errors), where
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = len(self.errors) - 20
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + shown + (f"; and {more} more" if more > 0 else ""))


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


def _optional_country(raw: str) -> str | None:
    return _country(raw) if raw else None


def _countries(raw: str) -> list[str] | None:
    codes = [c for c in re.split(r"[;,\s]+", raw) if c]
    return [_country(c) for c in codes] or None


def _text(limit: int) -> Callable[[str], str | None]:
    def convert(raw: str) -> str | None:
        if len(raw) > limit:
            raise ValueError(f"at most {limit} characters")
        return raw or None

    return convert


def _hs_code(raw: str) -> str | None:
    code = raw.replace(".", "").replace(" ", "")
    if code and not (code.isascii() and code.isdigit() and 4 <= len(code) <= 10):
        raise ValueError(f"expected an HS code of 4 to 10 digits such as 3004.90, got {raw!r}")
    return code or None


def _date(raw: str) -> str:
    try:
        return content.parse_date(raw, "seizure_date")
    except content.ContentError as exc:
        raise ValueError(exc.reason) from exc


def _handling(raw: str) -> str | None:
    code = raw.upper()
    if code and code not in HANDLING:
        raise ValueError(f"expected a handling code {', '.join(HANDLING)}, got {raw!r}")
    return code or None


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
    "description": _text(4096),
    "quantity_items": _quantity,
    "weight_kg": _weight,
    "hs_code": _hs_code,
    "brand": _text(256),
    "rights_holder": _text(256),
    "reporting_office": _text(256),
    "location_type": lambda raw: _choice(schema.enum("location_type"))(raw) if raw else None,
    "detection_method": lambda raw: _choice(schema.enum("detection_method"))(raw) if raw else None,
    "platform": _text(256),
    "route_departure": _optional_country,
    "route_transit": _countries,
    "route_destination": _optional_country,
    "concealment": _text(4096),
    "offence": _text(256),
    "consignor": _text(1024),
    "consignee": _text(1024),
    "remarks": _text(4096),
    "handling": _handling,
}


# -- rows to records -------------------------------------------------------------------
@dataclass
class _Record:
    first_row: int
    fields: dict[str, Any]
    goods: list[dict[str, Any]] = field(default_factory=list)
    rejected: bool = False

    def payload(self, record_id: str) -> dict[str, Any]:
        record: dict[str, Any] = {"record_id": record_id}
        for column, value in self.fields.items():
            if value is None or column == "handling":
                continue
            if column in _NESTED:
                group, key = _NESTED[column]
                record.setdefault(group, {})[key] = value
            else:
                record[column] = value
        return content.seizure({**record, "goods": self.goods})

    def handling(self, default: str) -> str:
        """The file's code, else ``default`` raised to H2 when personal data is carried."""
        given = self.fields.get("handling")
        if given:
            return str(given)
        personal = self.fields.get("consignor") or self.fields.get("consignee")
        return max(default, PERSONAL_DEFAULT) if personal else default


Reporting = tuple[str, Collection[str]]
"""The submitting organisation and the reporting codes the charter lists for it."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file: the default handling code, the XLSX sheet, decimal commas."""

    handling: str = "H0"
    sheet: str | None = None
    decimal_comma: bool = False


@dataclass(frozen=True)
class SeizureFile:
    """What a file holds: valid records, their handling codes (in the same order), every
    rejected cell, and the sheet read (XLSX only)."""

    records: list[dict[str, Any]]
    handling: list[str]
    rejected: list[RowError]
    sheet: str | None = None


class _Collector:
    """Groups converted rows into records and gathers every rejected cell."""

    def __init__(self, reporting: Reporting | None = None, options: ReadOptions | None = None):
        self.records: dict[str, _Record] = {}
        self.errors: list[RowError] = []
        self.reporting = reporting
        self.options = options or ReadOptions()

    def _country(self, row: int, values: dict[str, Any]) -> list[RowError]:
        country = values.get("reporting_country")
        if self.reporting is None or country is None or country in self.reporting[1]:
            return []
        org, codes = self.reporting
        listed = ", ".join(sorted(codes)) or "no country"
        reason = (
            f"{org} reports for {listed} in this operation's charter, not {country}; "
            "readers would leave the record out"
        )
        return [RowError(row, "reporting_country", reason, values.get("record_id") or "")]

    def add(self, row: int, cells: dict[str, str]) -> None:
        try:
            cells, errors = _decimals(cells, self.options.decimal_comma), []
        except ValueError as exc:
            cells = {**cells, "weight_kg": ""}
            errors = [RowError(row, "weight_kg", str(exc), cells.get("record_id", ""))]
        values, more = _convert(row, cells)
        errors += more
        errors += self._country(row, values)
        record_id = values.get("record_id")
        if record_id is None:
            self.errors += errors
            return
        record = self.records.setdefault(record_id, _Record(row, _record_fields(values)))
        errors += _disagreements(row, record, values, record_id)
        for column in _OPTIONAL_RECORD_COLUMNS:  # given on a later row only
            if record.fields.get(column) is None:
                record.fields[column] = values.get(column)
        self.errors += errors
        record.rejected |= bool(errors)
        if not errors:
            record.goods.append({c: values[c] for c in _LINE_COLUMNS if values[c] is not None})

    def result(self, sheet: str | None = None) -> SeizureFile:
        valid = [(rid, r) for rid, r in self.records.items() if not r.rejected]
        return SeizureFile(
            [r.payload(rid) for rid, r in valid],
            [r.handling(self.options.handling) for _, r in valid],
            sorted(self.errors, key=lambda e: e.row),
            sheet,
        )


def _decimals(cells: dict[str, str], decimal_comma: bool) -> dict[str, str]:
    """``cells`` with ``weight_kg`` written as the converter reads it (``.`` decimals);
    ValueError says why a separator is refused."""
    raw = cells.get("weight_kg", "")
    if not decimal_comma:
        if "," in raw:
            raise ValueError(f"{raw!r} has a decimal comma: submit with --decimal-comma")
        return cells
    if "." in raw or raw.count(",") > 1:
        raise ValueError(f"with --decimal-comma write kilograms as 12,5, got {raw!r}")
    return {**cells, "weight_kg": raw.replace(",", ".")}


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
    columns = (*RECORD_COLUMNS, *_OPTIONAL_RECORD_COLUMNS)
    return {c: values[c] for c in columns if c in values}


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
        for column in (*RECORD_COLUMNS, *_OPTIONAL_RECORD_COLUMNS)
        if values.get(column) is not None
        and record.fields.get(column) is not None
        and values[column] != record.fields[column]
    ]


# -- the file --------------------------------------------------------------------------
def _header(cells: list[str] | None) -> list[str]:
    names = [c.strip().lower() for c in cells or []]
    named = [n for n in names if n]  # a blank header cell (a trailing separator) names nothing
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if len(missing) == len(REQUIRED_COLUMNS):
        raise RecordError(
            [RowError(1, "header", "none of the seizure columns: not a record sheet")]
        )
    errors = []
    if len(missing) == 1:
        errors.append(RowError(1, missing[0], "required column is missing"))
    elif missing:
        errors.append(RowError(1, ", ".join(missing), "required columns are missing"))
    unknown = [_short(n) for n in named if n not in COLUMNS]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        errors.append(RowError(1, ", ".join(unknown[:3]) + more, "unknown column"))
    if len(set(named)) != len(named):
        errors.append(RowError(1, "header", "a column appears twice"))
    if errors:
        raise RecordError(errors)
    return names


def _short(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _matches(cells: list[str] | None) -> bool:
    """Whether a first row holds every required column (a sheet of seizure records)."""
    names = {c.strip().lower() for c in cells or []}
    return all(column in names for column in REQUIRED_COLUMNS)


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


def read_seizures_csv(
    path: str | os.PathLike[str],
    reporting: Reporting | None = None,
    options: ReadOptions | None = None,
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """The valid seizure records of a CSV file, and every rejected cell.

    Raises :class:`RecordError` when the header is unusable and :class:`ClientError` when the
    file cannot be read.
    """
    found = _load_csv(path, reporting, options)
    return found.records, found.rejected


def _load_csv(
    path: str | os.PathLike[str], reporting: Reporting | None, options: ReadOptions | None
) -> SeizureFile:
    collector = _Collector(reporting, options)
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            delimiter = _delimiter(f.readline())
            if delimiter == "," and collector.options.decimal_comma:
                raise ClientError(
                    f"{path} is separated by commas, so it cannot hold decimal commas: "
                    "drop --decimal-comma, or save the file separated by ';'"
                )
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter)
            header = _header(next(reader, None))
            for row, cells in _rows(reader, header):
                collector.add(row, cells)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from exc
    return collector.result()


def read_seizures_xlsx(
    path: str | os.PathLike[str],
    reporting: Reporting | None = None,
    options: ReadOptions | None = None,
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """The valid seizure records of an XLSX workbook, and every rejected cell (row numbers
    as the spreadsheet shows them), from the first sheet whose header holds the required
    columns or the sheet ``options.sheet`` names.

    Raises :class:`RecordError` when no sheet has a usable header (its message names the
    sheet) and :class:`ClientError` when the file cannot be read as a workbook.
    """
    found = _load_xlsx(path, reporting, options)
    return found.records, found.rejected


def _load_xlsx(
    path: str | os.PathLike[str], reporting: Reporting | None, options: ReadOptions | None
) -> SeizureFile:
    from openpyxl import load_workbook  # only XLSX imports it
    from openpyxl.utils.exceptions import InvalidFileException

    collector = _Collector(reporting, options)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
        raise ClientError(f"cannot read {path} as an XLSX workbook: {exc}") from exc
    try:
        sheet, where = _pick_sheet(workbook, collector.options.sheet)
        sheet_rows = sheet.iter_rows(values_only=True)
        try:
            rows = ([_xlsx_text(v) for v in values] for values in sheet_rows)
            try:
                header = _header(next(rows, None))
            except RecordError as exc:
                raise RecordError(exc.errors, where) from None
            for row, cells in _rows(rows, header):
                collector.add(row, cells)
        finally:
            sheet_rows.close()  # a sheet left half-read would keep the file open
    finally:
        workbook.close()
    return collector.result(sheet.title)


def _pick_sheet(workbook: Any, name: str | None) -> tuple[Any, str]:
    """The sheet named ``name``, else the first whose row 1 is a seizure header (else the
    first sheet), and how errors name it."""
    titles = [ws.title for ws in workbook.worksheets]
    if name is not None:
        if name not in titles:
            raise ClientError(f"no sheet {name!r} (the sheets: {', '.join(titles)})")
        return workbook[name], f"sheet {name!r}"
    for ws in workbook.worksheets:
        head = ws.iter_rows(max_row=1, values_only=True)
        first = next(head, None)
        head.close()
        if _matches([_xlsx_text(v) for v in first or ()]):
            return ws, f"sheet {ws.title!r}"
    # None matches: the first one's header errors say what is missing.
    others = (
        " (no sheet has the seizure header; pick one with --sheet NAME)" if len(titles) > 1 else ""
    )
    return workbook.worksheets[0], f"sheet {titles[0]!r}{others}"


def _xlsx_text(value: object) -> str:
    """A cell as the text a CSV would hold: dates as YYYY-MM-DD, 1000.0 as 1000."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def read_seizures(
    path: str | os.PathLike[str],
    reporting: Reporting | None = None,
    options: ReadOptions | None = None,
) -> tuple[list[dict[str, Any]], list[RowError]]:
    """:func:`read_seizures_xlsx` for ``.xlsx``/``.xlsm`` files, else :func:`read_seizures_csv`."""
    found = load_seizures(path, reporting, options)
    return found.records, found.rejected


def load_seizures(
    path: str | os.PathLike[str],
    reporting: Reporting | None = None,
    options: ReadOptions | None = None,
) -> SeizureFile:
    """As :func:`read_seizures`, with each record's handling code and the sheet read."""
    if Path(path).suffix.lower() in XLSX_SUFFIXES:
        return _load_xlsx(path, reporting, options)
    return _load_csv(path, reporting, options)


def write_seizures(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """:func:`write_seizures_xlsx` for ``.xlsx`` paths, else :func:`write_seizures_csv`."""
    if Path(path).suffix.lower() in XLSX_SUFFIXES:
        return write_seizures_xlsx(path, records)
    return write_seizures_csv(path, records)


def write_seizures_xlsx(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` as an XLSX sheet with :data:`COLUMNS`; returns the rows written.
    With no records, this is the empty template."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("seizures")
    sheet.append(list(COLUMNS))
    rows = 0
    for record in records:
        for line in record["goods"]:
            sheet.append([_value(record, line, c) for c in COLUMNS])
            rows += 1
    workbook.save(path)
    return rows


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


def _value(record: dict[str, Any], line: dict[str, Any], column: str) -> Any:
    """A cell's value: numbers stay numbers; yes/no, ``;``-joined lists and text otherwise."""
    if column in _LINE_COLUMNS:
        value = line.get(column)
    elif column in _NESTED:
        group, key = _NESTED[column]
        value = (record.get(group) or {}).get(key)
    else:
        value = record.get(column)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def _cell(record: dict[str, Any], line: dict[str, Any], column: str) -> str:
    value = _value(record, line, column)
    return "" if value is None else str(value)
