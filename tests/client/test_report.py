"""Seizure records end to end: the schema, CSV/XLSX import, and the operation report."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from decimal import Decimal
from importlib.resources import files

import pytest
import structlog

from opseal.client import cli, content, schema
from opseal.client.report import aggregate, checked_records
from opseal.client.report_render import CHART_COLOURS, render_csv, render_html, render_table
from opseal.client.seizures import (
    COLUMNS,
    read_seizures,
    write_seizures_csv,
    write_seizures_xlsx,
)

from .conftest import FAST, PASSPHRASE, grant_reporting
from .test_cli import Cli

OP = "op-stop-v"
_ALPHA2 = "AR AT AU BE BR CA CH CL CN CO CZ DE DK EG ES FI FR GB GR HU ID IE IN IT JP KE KR MA MX "
COUNTRIES = (_ALPHA2 + "NG NL NO NZ PL PT RO SA SE SG TH TR UA US VN ZA").split(" ")
GRAM = Decimal("0.001")


@pytest.fixture
def opseal(capsys, onboarded, monkeypatch) -> Cli:
    """The CLI on the enrolled profiles of ``onboarded`` (profile = device id)."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("OPSEAL_PROFILE", raising=False)
    with structlog.testing.capture_logs():
        yield Cli(capsys, onboarded.home)


def synthetic(count: int, seed: int = 7) -> list[dict]:
    """``count`` seizure records of 45 administrations, one to three goods lines each, with
    about three seizures per case and the optional fields on some."""
    rng = random.Random(seed)
    first = datetime.date(2025, 5, 12)
    records = []
    for n in range(count):
        country = COUNTRIES[n % len(COUNTRIES)]
        record = {
            "record_id": f"{country}-S{n:04d}",
            "case_ref": f"{country}-C{n // (3 * len(COUNTRIES))}-{n % 2}",
            "reporting_country": country,
            "seizure_date": (first + datetime.timedelta(days=n % 19)).isoformat(),
            "transport_mode": rng.choice(content.TRANSPORT_MODES),
            "ecommerce": rng.random() < 0.7,
            "goods": [_line(rng) for _ in range(rng.randint(1, 3))],
        }
        if n % 5 == 0:
            record["route"] = {"departure": "CN", "transit": ["AE", "TR"], "destination": country}
            record["persons"] = {"consignee": f"Person {n}"}
            record["location_type"] = "postal-facility"
        records.append(record)
    return records


def _line(rng: random.Random) -> dict:
    line = {
        "category": rng.choice(content.CATEGORIES),
        "description": "goods",
        "quantity_items": rng.randint(0, 250_000),
        "weight_kg": float(Decimal(rng.randint(0, 9_000_000)) / 1000),
    }
    if rng.random() < 0.3:
        line["hs_code"] = "300490"
    return line


def expected(records: list[dict]) -> dict:
    """The totals, worked out independently of the report module."""
    lines = [(r, g) for r in records for g in r["goods"]]
    cases = {(r["reporting_country"], r["case_ref"]) for r in records}
    ecommerce_cases = {(r["reporting_country"], r["case_ref"]) for r in records if r["ecommerce"]}
    by_category = {
        c: {
            "seizures": sum(any(g["category"] == c for g in r["goods"]) for r in records),
            "items": sum(g["quantity_items"] for _, g in lines if g["category"] == c),
            "weight_kg": sum(
                (Decimal(str(g["weight_kg"])) for _, g in lines if g["category"] == c),
                Decimal(0),
            ),
        }
        for c in content.CATEGORIES
    }
    return {
        "administrations": len({r["reporting_country"] for r in records}),
        "cases": len(cases),
        "seizures": len(records),
        "items": sum(g["quantity_items"] for _, g in lines),
        "weight_kg": sum((Decimal(str(g["weight_kg"])) for _, g in lines), Decimal(0)),
        "ecommerce_cases": len(ecommerce_cases),
        "ecommerce_seizures": sum(r["ecommerce"] for r in records),
        "by_category": by_category,
        "by_country": Counter(r["reporting_country"] for r in records),
        "by_day": Counter(r["seizure_date"] for r in records),
        "by_transport_mode": Counter(r["transport_mode"] for r in records),
    }


def assert_reproduces(report: dict, want: dict) -> None:
    totals = report["totals"]
    for key in ("administrations", "cases", "seizures", "items"):
        assert totals[key] == want[key], key
        assert isinstance(totals[key], int)
    assert Decimal(str(totals["weight_kg"])) == want["weight_kg"].quantize(GRAM)
    assert totals["ecommerce_cases"] == want["ecommerce_cases"]
    assert totals["ecommerce_seizures"] == want["ecommerce_seizures"]
    assert totals["ecommerce_share_cases"] == round(want["ecommerce_cases"] / want["cases"], 4)
    for category, values in want["by_category"].items():
        got = report["by_category"][category]
        assert (got["seizures"], got["items"]) == (values["seizures"], values["items"]), category
        assert Decimal(str(got["weight_kg"])) == values["weight_kg"].quantize(GRAM), category
    for section in ("by_country", "by_day", "by_transport_mode"):
        assert {k: v["seizures"] for k, v in report[section].items()} == want[section], section


# -- the schema ------------------------------------------------------------------------------
def test_the_schema_ships_in_the_package_and_matches_the_content_checks():
    """The versioned schema file is package data, and its enumerations are the client's."""
    shipped = files("opseal.client").joinpath("schemas", "seizure-record.v1.json")
    assert json.loads(shipped.read_text())["$id"] == schema.SCHEMA_ID
    goods = schema.SCHEMA["$defs"]["goods_line"]["properties"]
    assert tuple(goods["category"]["enum"]) == content.CATEGORIES
    assert schema.enum("transport_mode") == content.TRANSPORT_MODES
    assert set(schema.SCHEMA["required"]) >= {"record_id", "case_ref", "goods", "ecommerce"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seizure_date": "2025-02-30"}, "seizure_date"),
        ({"reporting_country": "fr"}, "reporting_country"),
        ({"goods": []}, "goods"),
        ({"goods": [{"category": "toys"}]}, "goods[0].category"),
        ({"goods": [{"category": "ipr", "quantity_items": -1}]}, "goods[0].quantity_items"),
        ({"goods": [{"category": "ipr", "quantity_items": 1.5}]}, "goods[0].quantity_items"),
        ({"goods": [{"category": "ipr", "weight_kg": float("inf")}]}, "goods[0].weight_kg"),
        ({"route": {"transit": ["AE", "xx"]}}, "route.transit[1]"),
        ({"colour": "red"}, "record"),
        ({"ecommerce": "yes"}, "ecommerce"),
    ],
)
def test_the_schema_refuses_a_bad_record_naming_the_field(change, field):
    """A record the schema refuses raises ContentError naming the field at fault."""
    record = {**synthetic(1)[0], **change}
    with pytest.raises(content.ContentError) as caught:
        content.seizure(record)
    assert caught.value.field == field


def test_records_failing_the_schema_after_decryption_are_left_out():
    """Invalid or repeated decrypted records are excluded, each with its reason."""
    good = synthetic(2)
    bad = {**good[1], "goods": [{"category": "toys"}]}
    codes = {"fr": ("AR",), "de": ("AR", "AT")}
    records, excluded = checked_records(
        [("m1", "fr", good[0]), ("m2", "de", bad), ("m3", "fr", good[0]), ("m4", "de", None)],
        codes,
    )
    assert records == [good[0]]
    assert [e.message_id for e in excluded] == ["m2", "m3", "m4"]
    assert "goods[0].category" in excluded[0].reason
    assert "repeats record" in excluded[1].reason


# -- import ----------------------------------------------------------------------------------
def test_csv_and_xlsx_carry_every_field_of_the_record(tmp_path):
    """Written as CSV or XLSX, records with optional fields read back identical."""
    records = synthetic(30)
    for name, write in (("s.csv", write_seizures_csv), ("s.xlsx", write_seizures_xlsx)):
        write(tmp_path / name, records)
        read, rejected = read_seizures(tmp_path / name)
        assert rejected == []
        assert read == [content.seizure(r) for r in records], name


def test_xlsx_rows_are_rejected_with_their_spreadsheet_row_numbers(tmp_path):
    """Bad cells of an XLSX sheet are reported by row and column like a CSV's."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append([*COLUMNS[:7], "quantity_items", "weight_kg"])
    sheet.append(
        ["X-1", "C-1", "FR", datetime.datetime(2025, 5, 13), "postal", "yes", "ipr", 5, 1.25]
    )
    sheet.append(["X-2", "C-1", "FR", "2025-13-01", "postal", "no", "ipr", 5, 1])
    sheet.append(["X-3", "C-2", "FR", "2025-05-13", "road", "no", "toys", -4, 1])
    book.save(tmp_path / "s.xlsx")
    records, rejected = read_seizures(tmp_path / "s.xlsx")
    assert [r["record_id"] for r in records] == ["X-1"]
    assert records[0]["seizure_date"] == "2025-05-13"
    assert records[0]["goods"] == [{"category": "ipr", "quantity_items": 5, "weight_kg": 1.25}]
    assert [(e.row, e.column) for e in rejected] == [
        (3, "seizure_date"), (4, "category"), (4, "quantity_items")
    ]  # fmt: skip


def test_templates_have_every_column_and_no_row(opseal, tmp_path):
    """`opseal template seizures` writes CSV and XLSX files that read as zero records."""
    for fmt in ("csv", "xlsx"):
        path = tmp_path / f"template.{fmt}"
        run = opseal.sync("fr-customs-device", "template", "seizures", "--format", fmt,
                          "--output", str(path))  # fmt: skip
        assert run.code == 0, run.err
        assert read_seizures(path) == ([], [])
    assert path.suffix == ".xlsx"
    stdout = opseal.sync("fr-customs-device", "template", "seizures")
    assert stdout.out.strip().split(",") == list(COLUMNS)


async def test_invalid_rows_are_reported_and_valid_records_submitted_once(
    opseal, onboarded, tmp_path
):
    """Each invalid row is named with its column and reason; the valid records are submitted
    once, a re-run duplicates nothing, and --all-or-nothing submits nothing."""
    await grant_reporting(onboarded, {"fr-customs": COUNTRIES})
    good = synthetic(4)
    path = tmp_path / "mixed.csv"
    await asyncio.to_thread(write_seizures_csv, path, good)
    header, *rows = path.read_text().splitlines()
    bad = [
        rows[0].replace("2025-05-12", "2025-05-32").replace(good[0]["record_id"], "BAD-1"),
        rows[0]
        .replace(good[0]["record_id"], "BAD-2")
        .replace(good[0]["goods"][0]["category"], "toys", 1),
        rows[0]
        .replace(good[0]["record_id"], "BAD-3")
        .replace(f",{good[0]['goods'][0]['quantity_items']},", ",-3,", 1),
    ]
    path.write_text("\n".join([header, *rows, *bad]) + "\n")
    first = len(rows) + 2

    refused = await opseal("fr-customs-device", "--json", "submit", "seizures", str(path),
                           "--op", OP, "--all-or-nothing")  # fmt: skip
    assert refused.code == 1
    assert refused.json["submitted"] == 0
    assert "nothing was submitted" in refused.err

    runs = [
        await opseal("fr-customs-device", "--json", "submit", "seizures", str(path), "--op", OP)
        for _ in range(2)
    ]
    for run in runs:
        assert run.code == 1
        assert [(r["row"], r["column"], r["record_id"]) for r in run.json["rejected"]] == [
            (first, "seizure_date", "BAD-1"),
            (first + 1, "category", "BAD-2"),
            (first + 2, "quantity_items", "BAD-3"),
        ]
        assert "not a calendar date" in run.json["rejected"][0]["reason"]
        assert "must not be negative" in run.json["rejected"][2]["reason"]
        assert f"row {first + 1}, column category" in run.err
    assert runs[0].json["message_ids"] == runs[1].json["message_ids"]
    report = await opseal("wco-device", "--json", "report", OP)
    assert report.code == 0, report.err
    assert report.json["totals"]["seizures"] == len(good)

    missing = tmp_path / "missing.xlsx"
    await asyncio.to_thread(write_seizures_xlsx, missing, good)
    from openpyxl import load_workbook

    book = load_workbook(missing)
    book.active.delete_cols(COLUMNS.index("category") + 1)
    book.save(missing)
    refused = await opseal("fr-customs-device", "submit", "seizures", str(missing), "--op", OP)
    assert refused.code == 2
    assert "row 1, column category: required column is missing" in refused.err


# -- the report ------------------------------------------------------------------------------
async def test_the_report_reproduces_a_synthetic_operation_exactly(opseal, onboarded, tmp_path):
    """Hundreds of multi-line seizures of 45 administrations, submitted from CSV and from XLSX
    by two customs administrations, give a report whose every total is exact; a re-run of
    both files changes nothing."""
    records = synthetic(360)
    want = expected(records)
    assert want["administrations"] == 45
    assert sum(len(r["goods"]) > 1 for r in records) > 150
    csv_file, xlsx_file = tmp_path / "fr.csv", tmp_path / "de.xlsx"
    await asyncio.to_thread(write_seizures_csv, csv_file, records[::2])
    await asyncio.to_thread(write_seizures_xlsx, xlsx_file, records[1::2])
    # both administrations report for all 45 (as regional offices would)
    await grant_reporting(onboarded, {"fr-customs": COUNTRIES, "de-customs": COUNTRIES})
    submissions = [("fr-customs-device", csv_file), ("de-customs-device", xlsx_file)] * 2
    for profile, path in submissions:
        run = await opseal(profile, "--json", "submit", "seizures", str(path), "--op", OP)
        assert run.code == 0, run.err
        assert run.json["rejected"] == []

    run = await opseal("wco-device", "--json", "report", OP)
    assert run.code == 0, run.err
    assert run.json["excluded"] == []
    assert_reproduces(run.json, want)
    csv_out = tmp_path / "report.csv"
    run = await opseal("de-customs-device", "report", OP, "--format", "csv",
                       "--output", str(csv_out))  # fmt: skip
    assert run.code == 0, run.err
    assert f"totals,,seizures,{len(records)}\n" in csv_out.read_text()
    table = await opseal("fr-customs-device", "report", OP)
    assert "By goods category" in table.out
    assert f"{want['items']:,}" in table.out


def test_the_report_of_no_records_is_zero():
    """With no records, every total is zero and every category is listed."""
    report = aggregate([])
    assert report["totals"]["seizures"] == report["totals"]["ecommerce_share_cases"] == 0
    assert set(report["by_category"]) == set(content.CATEGORIES)
    assert "Totals" in render_table(report)
    assert render_csv(report).startswith("section,key,metric,value\n")


# -- the HTML page in a browser --------------------------------------------------------------
def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if tag == b"IHDR" else header
        idat += body if tag == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8, depth
    assert colour_type in (2, 6), colour_type
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    out, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        _unfilter(kind, line, previous, bpp)
        out += line
        previous = line
    return width, height, bpp, bytes(out)


def _unfilter(kind: int, line: bytearray, up: bytearray, bpp: int) -> None:
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
        return
    for i in range(len(line) if kind else 0):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up[i]) // 2) & 0xFF
        elif kind == 4:
            corner = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            best = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            line[i] = (line[i] + best) & 0xFF


def test_the_html_report_draws_its_charts_in_headless_chromium(tmp_path):
    """The HTML page references no URL, opens in headless Chromium, and its three charts
    are drawn (pixels of each chart colour in the screenshot)."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    report = {"operation_id": OP, **aggregate(synthetic(200))}
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    text = page.read_text()
    for reference in ("http://", "https://", "src=", "url(", "@import"):
        assert reference not in text
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1000,1500", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    width, height, bpp, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (1000, 1500)
    counts = Counter(pixels[i : i + 3] for i in range(0, len(pixels), bpp))
    for chart, colour in CHART_COLOURS.items():
        rgb = bytes.fromhex(colour[1:])
        assert counts[rgb] > 2000, (chart, counts[rgb])
    assert len(counts) > 10  # text, tiles and bars, not a blank page
