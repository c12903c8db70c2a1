"""Files the demo shares: a small real PDF, a PNG photo and a batch of seizure records.

Everything is generated (no binary fixtures in the repository) and deterministic for a seed.
"""

from __future__ import annotations

import datetime
import random
import struct
import zlib
from typing import Any

from .content import CATEGORIES, TRANSPORT_MODES

__all__ = ["operational_plan_pdf", "parcel_png", "seizure_records"]

PLAN_LINES = (
    "Operation STOP V - Operational Plan",
    "",
    "Participating customs administrations only. Handling code H2.",
    "1. Operational phase: targeted controls on postal and express flows.",
    "2. Risk indicators: e-commerce consignments declared as cosmetics or gifts,",
    "   medicines shipped from non-licensed senders, repeated consignees.",
    "3. Report every seizure in real time in the seizures area (CSV upload or form).",
    "4. Alerts: send to the destination administration; answer within 72 hours.",
    "5. Acknowledge receipt of this plan in OpSeal.",
)


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def operational_plan_pdf(lines: tuple[str, ...] = PLAN_LINES) -> bytes:
    """A one-page PDF 1.4 file with ``lines`` of Helvetica text and a correct xref table."""
    body = "".join(f"({_pdf_text(line)}) Tj 0 -20 Td " for line in lines)
    stream = f"BT /F1 13 Tf 60 780 Td {body}ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def parcel_png(width: int = 160, height: int = 120) -> bytes:
    """An RGB PNG of a brown parcel on a grey table (the officer's "photo")."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type: none
        for x in range(width):
            inside = width // 5 < x < 4 * width // 5 and height // 4 < y < 3 * height // 4
            tape = inside and abs(x - width // 2) < 4
            shade = (x + y) % 16
            pixel = (
                (200, 180, 120)
                if tape
                else (150 + shade, 100 + shade, 50)
                if inside
                else (90, 90, 95)
            )
            row += bytes(pixel)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


_DESCRIPTIONS = {
    "ipr": "counterfeit watches",
    "medicines": "falsified tablets",
    "medical-devices": "unapproved test kits",
    "other-counterfeit": "fake cosmetics",
    "drugs": "synthetic drugs",
    "precursors": "chemical precursors",
    "hazardous": "counterfeit batteries",
    "other": "undeclared goods",
}


def _goods_line(rng: random.Random) -> dict[str, Any]:
    category = rng.choice(CATEGORIES)
    return {
        "category": category,
        "description": _DESCRIPTIONS[category],
        "quantity_items": rng.randint(1, 5000),
        "weight_kg": round(rng.uniform(0.05, 80.0), 3),
    }


def seizure_records(
    country: str, count: int, today: datetime.date, seed: int = 5
) -> list[dict[str, Any]]:
    """``count`` plausible seizure records of ``country``, some with two goods lines."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    records = []
    for n in range(1, count + 1):
        records.append(
            {
                "record_id": f"{country}-{n:04d}",
                "case_ref": f"{country}-C-{(n + 1) // 2:04d}",
                "reporting_country": country,
                "seizure_date": (today - datetime.timedelta(days=rng.randint(0, 6))).isoformat(),
                "transport_mode": rng.choice(TRANSPORT_MODES[:3])
                if n % 4
                else rng.choice(TRANSPORT_MODES),
                "ecommerce": rng.random() < 0.7,
                "goods": [_goods_line(rng) for _ in range(1 if n % 5 else 2)],
            }
        )
    return records
