"""The operation report (design §8): aggregates of seizure records, computed on the client.

Pure functions on lists of record dicts; nothing here reads the network or the store.
:func:`checked_records` keeps the records valid against the shipped schema (and one record per
``reporting_country``/``record_id``) and says why any other was left out; :func:`aggregate`
counts them:

- ``totals``: ``administrations`` (distinct reporting countries), ``cases`` (distinct
  ``case_ref`` per country), ``seizures`` (records), ``goods_lines``, ``items``, ``weight_kg``,
  ``ecommerce_seizures``/``ecommerce_cases`` (a case is e-commerce related when any of its
  seizures is) and their shares (0 to 1, four decimals);
- ``by_category.<category>``: ``seizures`` (records with at least one line of it),
  ``goods_lines``, ``items``, ``weight_kg`` — every category, zeros included;
- ``by_country.<CC>``: ``cases``, ``seizures``, ``ecommerce_seizures``, ``items``,
  ``weight_kg``;
- ``by_transport_mode.<mode>`` and ``by_day.<YYYY-MM-DD>``: ``seizures``, ``items``,
  ``weight_kg``.

Counts are exact integers; weights are summed as :class:`~decimal.Decimal` and given in
kilograms rounded to the gram (a JSON number with at most three decimals).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from . import content
from .schema import SCHEMA_ID

__all__ = ["Excluded", "aggregate", "checked_records", "kilograms"]

_GRAM = Decimal("0.001")


@dataclass(frozen=True)
class Excluded:
    """A decrypted record left out of the report, and why."""

    message_id: str
    org: str
    reason: str

    def __str__(self) -> str:
        return f"record in message {self.message_id} from {self.org} left out: {self.reason}"


def checked_records(
    messages: Iterable[tuple[str, str, Any]],
) -> tuple[list[dict[str, Any]], list[Excluded]]:
    """From ``(message_id, org, payload)`` triples, the records valid against the schema and,
    for the others (and repeats of a country's record id), why they were left out."""
    records: list[dict[str, Any]] = []
    excluded: list[Excluded] = []
    seen: dict[tuple[str, str], str] = {}
    for message_id, org, payload in messages:
        try:
            record = content.seizure(payload)
        except content.ContentError as exc:
            excluded.append(Excluded(message_id, org, f"not a valid seizure record: {exc}"))
            continue
        key = (record["reporting_country"], record["record_id"])
        if key in seen:
            reason = f"repeats record {'/'.join(key)} of message {seen[key]}"
            excluded.append(Excluded(message_id, org, reason))
            continue
        seen[key] = message_id
        records.append(record)
    return records, excluded


def kilograms(value: Decimal) -> float:
    """A weight for output: kilograms rounded to the gram."""
    return float(value.quantize(_GRAM, rounding=ROUND_HALF_EVEN))


@dataclass
class _Tally:
    seizures: int = 0
    goods_lines: int = 0
    items: int = 0
    weight: Decimal = Decimal(0)
    ecommerce_seizures: int = 0
    cases: set[str] = field(default_factory=set)

    def add(self, record: Mapping[str, Any], lines: list[Mapping[str, Any]]) -> None:
        self.seizures += 1
        self.ecommerce_seizures += record["ecommerce"] is True
        self.cases.add(record["case_ref"])
        self.goods_lines += len(lines)
        for line in lines:
            self.items += line.get("quantity_items") or 0
            weight = line.get("weight_kg")
            if weight:
                self.weight += Decimal(str(weight))

    def json(self, *keys: str) -> dict[str, Any]:
        values = {
            "seizures": self.seizures,
            "goods_lines": self.goods_lines,
            "items": self.items,
            "weight_kg": kilograms(self.weight),
            "ecommerce_seizures": self.ecommerce_seizures,
            "cases": len(self.cases),
        }
        return {k: values[k] for k in keys}


_BASIC = ("seizures", "items", "weight_kg")


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def aggregate(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The report of valid seizure records (see the module docstring for its keys)."""
    total = _Tally()
    by_category = {c: _Tally() for c in content.CATEGORIES}
    by_country: dict[str, _Tally] = {}
    by_mode: dict[str, _Tally] = {}
    by_day: dict[str, _Tally] = {}
    cases: set[tuple[str, str]] = set()
    ecommerce_cases: set[tuple[str, str]] = set()
    for record in records:
        lines = record["goods"]
        case = (record["reporting_country"], record["case_ref"])
        cases.add(case)
        if record["ecommerce"] is True:
            ecommerce_cases.add(case)
        total.add(record, lines)
        by_country.setdefault(record["reporting_country"], _Tally()).add(record, lines)
        by_mode.setdefault(record["transport_mode"], _Tally()).add(record, lines)
        by_day.setdefault(record["seizure_date"], _Tally()).add(record, lines)
        for category in {line["category"] for line in lines}:
            by_category[category].add(record, [g for g in lines if g["category"] == category])
    return {
        "schema": SCHEMA_ID,
        "totals": {
            "administrations": len(by_country),
            "cases": len(cases),
            **total.json("seizures", "goods_lines", "items", "weight_kg", "ecommerce_seizures"),
            "ecommerce_cases": len(ecommerce_cases),
            "ecommerce_share_seizures": _share(total.ecommerce_seizures, total.seizures),
            "ecommerce_share_cases": _share(len(ecommerce_cases), len(cases)),
        },
        "by_category": {
            c: t.json("seizures", "goods_lines", "items", "weight_kg")
            for c, t in by_category.items()
        },
        "by_country": {
            c: by_country[c].json("cases", "seizures", "ecommerce_seizures", "items", "weight_kg")
            for c in sorted(by_country)
        },
        "by_transport_mode": {m: by_mode[m].json(*_BASIC) for m in sorted(by_mode)},
        "by_day": {d: by_day[d].json(*_BASIC) for d in sorted(by_day)},
    }
