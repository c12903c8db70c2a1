"""The operation report (design §8): aggregates of seizure records, computed on the client.

Pure functions on lists of record dicts; nothing here reads the network or the store.
:func:`latest_versions` applies the provenance rules (design §15 "Provenance") and
:func:`checked_records` returns the records they keep, saying why any other was left out:

- a record is identified by its **sender organisation** (from the verified envelope, never
  from the payload) and its ``record_id``; a repeat of the same pair is left out, so a record
  another member writes can never displace a genuine one;
- a record counts only if the charter lists its ``reporting_country`` among the sender
  organisation's reporting codes; otherwise it is left out with a reason naming both;
- a ``correction`` replaces the version it names in ``supersedes`` when it comes from the
  same organisation, in the same area, for the same ``record_id``, and names the latest
  version; any other correction is left out with its reason (a coordinator cannot correct
  another organisation's record). The latest version whose country is allowed counts.

:func:`aggregate` counts the records:

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

A **stakeholder** reads no seizure area, only the sanitised copies a coordinator released to
it (:mod:`.release`): :func:`released_records` gives those records (the latest copy of each
``(reporting_country, record_id)``, from coordinators only), and its report says that it
covers released records.

Counts are exact integers; weights are summed as :class:`~decimal.Decimal` and given in
kilograms rounded to the gram (a JSON number with at most three decimals).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import TYPE_CHECKING, Any

from . import content
from .schema import SCHEMA_ID

if TYPE_CHECKING:  # annotations only (the crypto core is not needed to aggregate)
    from opseal.crypto.charter import Charter

__all__ = [
    "RECORD_TYPES",
    "Excluded",
    "Submission",
    "Version",
    "aggregate",
    "checked_records",
    "kilograms",
    "latest_versions",
    "record_heads",
    "released_records",
    "reporting_codes",
]

RECORD_TYPES = ("seizure", "correction")
"""Content types that carry a version of a seizure record."""

_GRAM = Decimal("0.001")


@dataclass(frozen=True)
class Excluded:
    """A decrypted record left out of the report, and why."""

    message_id: str
    org: str
    reason: str

    def __str__(self) -> str:
        return f"record in message {self.message_id} from {self.org} left out: {self.reason}"


@dataclass(frozen=True)
class Submission:
    """A verified message carrying a seizure record: who sent it (the organisation of the
    verified sender device), where, and its decrypted payload. ``source`` is the caller's
    own object for the message (e.g. a :class:`~.store.StoredMessage`), handed back."""

    message_id: str
    org: str
    payload: Any
    content_type: str = "seizure"
    area: str = ""
    source: Any = None


@dataclass(frozen=True)
class Version:
    """The version of a record that counts: its submission and its checked record."""

    submission: Submission
    record: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """(sender organisation, record id): what identifies a record."""
        return (self.submission.org, self.record["record_id"])


def reporting_codes(charter: Charter) -> dict[str, tuple[str, ...]]:
    """Each member organisation's reporting codes, from a verified charter version."""
    return {m.organisation_id: m.reporting_codes for m in charter.members}


@dataclass
class _Chain:
    """The versions of one record in order; ``head`` is the latest, valid or not."""

    head: str
    area: str
    head_record: dict[str, Any]
    latest_valid: Version | None = None


class _Versions:
    """Walks submissions in order and keeps each record's chain of versions."""

    def __init__(self, reporting: Mapping[str, Collection[str]]) -> None:
        self.reporting = reporting
        self.chains: dict[tuple[str, str], _Chain] = {}
        self.by_message: dict[tuple[str, str], tuple[str, str]] = {}
        self.senders: dict[str, set[str]] = {}
        self.excluded: list[Excluded] = []

    def exclude(self, s: Submission, reason: str) -> None:
        self.excluded.append(Excluded(s.message_id, s.org, reason))

    def take(self, s: Submission) -> None:
        self.senders.setdefault(s.message_id, set()).add(s.org)
        parsed = self._parse(s)
        if parsed is None:
            return
        record, supersedes = parsed
        key = (s.org, record["record_id"])
        chain = self._chain(s, key, supersedes)
        if chain is None:
            return
        self.by_message[(s.org, s.message_id)] = key
        chain.head_record = record
        reason = self._country(s.org, record["reporting_country"])
        if reason is not None:
            self.exclude(s, reason)
            return
        chain.latest_valid = Version(s, record)

    def _parse(self, s: Submission) -> tuple[dict[str, Any], str | None] | None:
        try:
            if s.content_type == "correction":
                corrected = content.correction(s.payload)
                return corrected["record"], corrected["supersedes"]
            return content.seizure(s.payload), None
        except content.ContentError as exc:
            self.exclude(s, f"not a valid {s.content_type} record: {exc}")
            return None

    def _chain(self, s: Submission, key: tuple[str, str], supersedes: str | None) -> _Chain | None:
        """The record's chain with ``s`` as its new head, or None (and why) if ``s`` may not
        be its next version."""
        chain = self.chains.get(key)
        if supersedes is None:
            if chain is not None:
                self.exclude(s, f"repeats record {'/'.join(key)} of message {chain.head}")
                return None
            chain = self.chains[key] = _Chain(s.message_id, s.area, {})
            return chain
        reason = self._correction_refused(s, key, supersedes, chain)
        if reason is not None:
            self.exclude(s, reason)
            return None
        assert chain is not None
        chain.head = s.message_id
        return chain

    def _correction_refused(
        self, s: Submission, key: tuple[str, str], supersedes: str, chain: _Chain | None
    ) -> str | None:
        target = self.by_message.get((s.org, supersedes))
        if target is None:
            others = sorted(self.senders.get(supersedes, set()) - {s.org})
            if others:
                return (
                    f"{s.org} may not correct message {supersedes} of {', '.join(others)}: "
                    "only the record's own organisation corrects it"
                )
            return f"corrects message {supersedes}, which is no earlier record of {s.org}"
        if target != key:
            return (
                f"corrects record {'/'.join(target)} but carries record_id {key[1]!r}: "
                "a correction keeps the record id"
            )
        assert chain is not None
        if chain.area != s.area:
            return f"corrects a record of area {chain.area!r} from area {s.area!r}"
        if chain.head != supersedes:
            return f"corrects message {supersedes}, already superseded by message {chain.head}"
        return None

    def _country(self, org: str, country: str) -> str | None:
        codes = sorted(self.reporting.get(org, ()))
        if country in codes:
            return None
        listed = ", ".join(codes) if codes else "no country"
        return (
            f"sender organisation {org} may not report for {country} "
            f"(the charter lists it as reporting for {listed})"
        )


def latest_versions(
    submissions: Iterable[Submission], reporting: Mapping[str, Collection[str]]
) -> tuple[list[Version], list[Excluded]]:
    """The version that counts of each record, from ``submissions`` in the order the areas
    numbered them, and why any submission was left out. ``reporting`` maps each organisation
    to its reporting codes (:func:`reporting_codes`)."""
    versions = _Versions(reporting)
    for s in submissions:
        versions.take(s)
    kept = [c.latest_valid for c in versions.chains.values() if c.latest_valid is not None]
    return kept, versions.excluded


def record_heads(
    submissions: Iterable[Submission],
) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """The latest version of each record, allowed country or not: ``(org, record_id)`` ->
    ``(message id, record)``. What a correction must supersede."""
    versions = _Versions({})
    for s in submissions:
        versions.take(s)
    return {key: (c.head, c.head_record) for key, c in versions.chains.items()}


def checked_records(
    messages: Iterable[Submission | tuple[str, str, Any]],
    reporting: Mapping[str, Collection[str]],
) -> tuple[list[dict[str, Any]], list[Excluded]]:
    """The records that count (see :func:`latest_versions`) and why any other was left out;
    a ``(message_id, org, payload)`` triple stands for a ``seizure`` submission."""
    submissions = (m if isinstance(m, Submission) else Submission(*m) for m in messages)
    versions, excluded = latest_versions(submissions, reporting)
    return [v.record for v in versions], excluded


def released_records(releases: Iterable[tuple[str, Any]], charter: Charter) -> list[dict[str, Any]]:
    """The records of ``(sender organisation, release payload)`` pairs sent by a coordinator
    of ``charter``, each checked as a seizure record; a later copy of the same record replaces
    an earlier one."""
    coordinators = {m.organisation_id for m in charter.members if m.role == "coordinator"}
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for org, payload in releases:
        record = payload.get("record") if isinstance(payload, dict) else None
        if org not in coordinators or not isinstance(record, dict):
            continue
        try:
            checked = content.seizure(record)
        except content.ContentError:
            continue
        latest[(checked["reporting_country"], checked["record_id"])] = checked
    return list(latest.values())


def kilograms(value: Decimal) -> float:
    """A weight for output: kilograms rounded to the gram (with the precision that takes:
    a member may send 1e30 kg, beyond the default 28 digits)."""
    with localcontext() as exact:
        exact.prec = max(exact.prec, value.adjusted() + 4)
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
        self.add_sums(record, len(lines), *_sums(lines))

    def add_sums(self, record: Mapping[str, Any], lines: int, items: int, weight: Decimal) -> None:
        """Count ``record`` with ``lines`` goods lines holding ``items`` and ``weight``."""
        self.seizures += 1
        self.ecommerce_seizures += record["ecommerce"] is True
        self.cases.add(record["case_ref"])
        self.goods_lines += lines
        self.items += items
        self.weight += weight

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


def _sums(lines: list[Mapping[str, Any]]) -> tuple[int, Decimal]:
    """The items and the weight (exact) of goods lines."""
    items, weight = 0, Decimal(0)
    for line in lines:
        items += line.get("quantity_items") or 0
        kg = line.get("weight_kg")
        if kg:
            weight += Decimal(str(kg))
    return items, weight


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
        sums = (len(lines), *_sums(lines))  # once for the four tallies the record counts in
        total.add_sums(record, *sums)
        by_country.setdefault(record["reporting_country"], _Tally()).add_sums(record, *sums)
        by_mode.setdefault(record["transport_mode"], _Tally()).add_sums(record, *sums)
        by_day.setdefault(record["seizure_date"], _Tally()).add_sums(record, *sums)
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
