"""Export of decrypted seizure records (design §5 handling codes, §8 personal data).

Pure functions over verified :class:`~.store.StoredMessage` lists; the CLI (``opseal export``)
syncs, reads, declares and writes.

**Personal data** is left out unless asked for: the ``persons`` field (consignor, consignee),
every top-level field the shipped schema marks ``"x-personal-data": true`` (how a record's
fields are marked personal; :data:`PERSONAL_FIELDS`), and, defensively, any top-level field
whose name starts with ``consignor`` or ``consignee``.

**Handling codes** decide whether personal data may be exported (:func:`check_personal`):

- ``H0`` (law-enforcement use): allowed.
- ``H1`` (not for judicial use without the owner's consent): allowed, with a warning.
- ``H2`` (no further dissemination without permission): refused, except to the originating
  organisation.
- ``H3`` (other restrictions in the text): refused (the client cannot read the restrictions),
  except to the originating organisation; read them and ask the originator.

The originating organisation may always export its own records. Without personal data, every
record the user may read is exported whatever its code. A refusal refuses the whole export
(naming the records), so no one receives a silently partial file. An export with personal data
is declared to the server first (a ``client-declaration`` audit entry); if the declaration
fails, nothing is written.

``release`` messages (sanitised copies, see :mod:`.release`) are exported too, their record
taken from the release payload: a stakeholder exports what was released to it — when the
releasing organisation is a coordinator in the charter.

**Provenance** (design §15): of ``seizure`` and ``correction`` messages, only the version
that counts of each record is exported — the latest whose ``reporting_country`` the sender
organisation may report for, keyed by (sender organisation, record id)
(:func:`.report.latest_versions`); the rest are left out, as in the report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .corrections import submissions
from .errors import ClientError
from .report import latest_versions, reporting_codes
from .schema import SCHEMA

if TYPE_CHECKING:  # annotations only: `opseal --help` lists the formats without the crypto core
    from opseal.crypto.charter import Charter

    from .store import StoredMessage

__all__ = [
    "FORMATS",
    "PERSONAL_FIELDS",
    "ExportRefused",
    "ExportRow",
    "check_personal",
    "collect",
    "csv_text",
    "is_personal",
    "neutralise",
    "strip_personal",
    "to_csv",
    "to_json",
    "to_xlsx",
]

FORMATS = ("csv", "json")
PERSONAL_PREFIXES = ("consignor", "consignee")
PERSONAL_FIELDS = frozenset(
    {"persons"}
    | {
        name
        for name, spec in SCHEMA.get("properties", {}).items()
        if isinstance(spec, dict) and spec.get("x-personal-data") is True
    }
)
"""Top-level record fields holding personal data (from the schema's markers)."""
META_COLUMNS = ("message_id", "content_type", "area", "org", "handling")
LINE_COLUMNS_FIRST = ("category", "description", "quantity_items", "weight_kg")
H1_WARNING = "not for judicial use without the owner's consent (H1)"


class ExportRefused(ClientError):
    """The handling code of one or more records forbids exporting their personal data."""


@dataclass
class ExportRow:
    """One exported record and where it came from."""

    message: StoredMessage
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        m = self.message
        meta = {
            "message_id": m.message_id,
            "content_type": m.content_type,
            "area": m.area,
            "org": m.org,
            "handling": m.handling,
        }
        return {**meta, "record": self.record}


def is_personal(name: str) -> bool:
    """Whether top-level record field ``name`` holds personal data."""
    return name in PERSONAL_FIELDS or name.startswith(PERSONAL_PREFIXES)


def strip_personal(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` without its personal data."""
    return {k: v for k, v in record.items() if not is_personal(k)}


def check_personal(message: StoredMessage, reader_org: str) -> str | None:
    """Why ``reader_org`` may not export this record's personal data (None: it may)."""
    if message.org == reader_org or message.handling in ("H0", "H1"):
        return None
    if message.handling == "H2":
        return (
            f"handling code H2 (no further dissemination without permission): only "
            f"{message.org} may export its personal data"
        )
    if message.handling == "H3":
        return (
            "handling code H3 (other restrictions in the text): read the restrictions "
            f"in the record and ask {message.org}"
        )
    return f"unknown handling code {message.handling!r}"


def _record_of(message: StoredMessage) -> dict[str, Any] | None:
    try:
        payload = message.json()
    except ValueError:
        return None
    if message.content_type == "release" and isinstance(payload, dict):
        payload = payload.get("record")
    return payload if isinstance(payload, dict) else None


def _counted(
    messages: Iterable[StoredMessage], charter: Charter
) -> Iterator[tuple[StoredMessage, dict[str, Any]]]:
    """The messages whose record counts, in order: the version that counts of each seizure
    record, and releases by a coordinator."""
    messages = list(messages)
    versions, _ = latest_versions(submissions(messages), reporting_codes(charter))
    counted = {id(v.submission.source): v.record for v in versions}
    coordinators = {m.organisation_id for m in charter.members if m.role == "coordinator"}
    for m in messages:
        if id(m) in counted:
            yield m, counted[id(m)]
        elif m.content_type == "release" and m.org in coordinators:
            record = _record_of(m)
            if record is not None:
                yield m, record


def collect(
    messages: Iterable[StoredMessage],
    reader_org: str,
    charter: Charter,
    *,
    include_personal: bool = False,
) -> list[ExportRow]:
    """The rows to export from verified seizure, correction and release messages (those
    that count under ``charter``, see the module docstring), personal data removed unless
    ``include_personal``; :class:`ExportRefused` names every record whose handling code
    forbids exporting its personal data to ``reader_org``."""
    rows, refused = [], []
    for m, record in _counted(messages, charter):
        if not include_personal:
            rows.append(ExportRow(m, strip_personal(record)))
            continue
        reason = check_personal(m, reader_org)
        if reason is not None:
            refused.append(f"{m.message_id} (record {record.get('record_id')}): {reason}")
            continue
        warnings = [f"{m.message_id}: {H1_WARNING}"] if m.handling == "H1" else []
        rows.append(ExportRow(m, dict(record), warnings))
    if refused:
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        shown = "; ".join(refused[:5]) + more
        raise ExportRefused(
            f"{len(refused)} record(s) may not be exported with personal data: {shown}"
        )
    return rows


def to_json(rows: Sequence[ExportRow], operation_id: str, *, include_personal: bool) -> str:
    """The export as one JSON document."""
    data = {
        "operation_id": operation_id,
        "include_personal": include_personal,
        "records": [r.json() for r in rows],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)."""


def neutralise(text: str) -> str:
    """``text`` made inert in a spreadsheet: a cell starting with one of
    :data:`FORMULA_STARTS` gets a leading single quote, so it opens as text, not a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _value(value: Any) -> str | int | float:
    """A cell of the CSV or XLSX export: numbers stay numbers, every text is neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        return neutralise(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return neutralise(str(value))


def _cell(value: Any) -> str:
    return str(_value(value))


def to_csv(rows: Sequence[ExportRow]) -> str:
    """The export as CSV, one row per goods line (like the import format): the message's
    metadata, the record's fields (objects and lists as JSON), then the goods line's fields
    (named as in the import; a line field that clashes with a record field gets ``line_``).
    Text cells are :func:`neutralised <neutralise>`."""
    return csv_text([_cell(v) for v in row] for row in _table(rows))


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """``rows`` as CSV text with ``\\n`` line ends. A row with a carriage return in a cell is
    written fully quoted: Python 3.11's writer leaves a lone CR unquoted, which a reader (or a
    spreadsheet) takes for the end of the row."""
    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        has_cr = any(isinstance(c, str) and "\r" in c for c in row)
        (quoted if has_cr else plain).writerow(row)
    return out.getvalue()


def to_xlsx(rows: Sequence[ExportRow]) -> bytes:
    """The export as an XLSX workbook, the same table as :func:`to_csv`: numbers as numbers,
    text as (neutralised) text cells, never formulas."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet = book.create_sheet("records")
    for row in _table(rows):
        values = (_value(v) for v in row)
        sheet.append(
            [ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in values]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _table(rows: Sequence[ExportRow]) -> Iterator[list[Any]]:
    """The header, then one list of raw values per goods line."""
    record_cols: dict[str, None] = {}
    line_cols: dict[str, None] = dict.fromkeys(LINE_COLUMNS_FIRST)
    for r in rows:
        record_cols.update((k, None) for k in r.record if k != "goods")
        for line in r.record.get("goods") or []:
            if isinstance(line, dict):
                line_cols.update((k, None) for k in line)
    clash = {c for c in line_cols if c in record_cols or c in META_COLUMNS}
    line_names = {c: f"line_{c}" if c in clash else c for c in line_cols}
    record_names = [c for c in record_cols if c not in META_COLUMNS]
    yield [*META_COLUMNS, *record_names, *line_names.values()]
    for r in rows:
        meta = r.json()
        head = [meta[c] for c in META_COLUMNS] + [r.record.get(c) for c in record_names]
        lines = [g for g in r.record.get("goods") or [] if isinstance(g, dict)] or [{}]
        for line in lines:
            yield head + [line.get(c) for c in line_cols]
