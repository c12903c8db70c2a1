"""A check run as a user would: a 60-administration operation where every administration
submits its own CSV through `opseal submit seizures`, and one hostile member forges records
in other countries' names and squats their message ids; the coordinator's
`opseal report --format json` equals the honest totals exactly."""

from __future__ import annotations

import asyncio
import datetime
import random
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from opseal.client import cli, content
from opseal.client.client import Client
from opseal.client.profile import Profile
from opseal.client.seizures import write_seizures_csv
from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.keys import SigningKey
from opseal.server.services import instance as admin

from .conftest import FAST, PASSPHRASE
from .test_cli import Cli

OP = "op-stop-vi"
CODES = re.findall(
    r"[A-Z]{2}",
    "AR AT AU BE BG BR CA CH CL CN CO CZ DE DK EE EG ES FI FR GB GR HR HU ID IE IL IN IS IT JP "
    "KE KR LT LU LV MA MT MX MY NG NL NO NZ PE PH PK PL PT RO RS SA SE SG SI SK TH TR UA US ZA",
)
HOSTILE, HOSTILE_CODE = "xx-customs", "XK"
AREAS = (
    AreaPolicy("seizures", frozenset({"coordinator", "customs"}),
               frozenset({"coordinator", "customs"}), "since-join"),
)  # fmt: skip
GRAM = Decimal("0.001")


def org_of(code: str) -> str:
    return f"{code.lower()}-customs"


def records_of(code: str, rng: random.Random) -> list[dict[str, Any]]:
    """One or two seizures of one administration, one or two goods lines each."""
    first = datetime.date(2026, 5, 12)
    return [
        {
            "record_id": f"{code}-{n:03d}",
            "case_ref": f"{code}-C{n // 2}",
            "reporting_country": code,
            "seizure_date": (first + datetime.timedelta(days=rng.randint(0, 18))).isoformat(),
            "transport_mode": rng.choice(content.TRANSPORT_MODES),
            "ecommerce": rng.random() < 0.7,
            "goods": [
                {
                    "category": rng.choice(content.CATEGORIES),
                    "quantity_items": rng.randint(0, 50_000),
                    "weight_kg": float(Decimal(rng.randint(0, 900_000)) / 1000),
                }
                for _ in range(rng.randint(1, 2))
            ],
        }
        for n in range(rng.randint(1, 2))
    ]


def honest_totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals worked out from the files, independently of the report module."""
    lines = [g for r in records for g in r["goods"]]
    return {
        "administrations": len({r["reporting_country"] for r in records}),
        "cases": len({(r["reporting_country"], r["case_ref"]) for r in records}),
        "seizures": len(records),
        "goods_lines": len(lines),
        "items": sum(g["quantity_items"] for g in lines),
        "weight_kg": sum((Decimal(str(g["weight_kg"])) for g in lines), Decimal(0)),
        "by_country": Counter(r["reporting_country"] for r in records),
        "items_by_country": {
            c: sum(g["quantity_items"] for r in records if r["reporting_country"] == c
                   for g in r["goods"])
            for c in {r["reporting_country"] for r in records}
        },
    }  # fmt: skip


async def enrol(server, home: Path, org: str, kind: str, coordinator: bool) -> Client:
    root = SigningKey.generate()
    await admin.create_organisation(server.ctx, org, org, kind, can_coordinate=coordinator)
    code = await admin.create_enrolment_code(server.ctx, org)
    client = await Client.enrol(
        Profile(f"{org}-device", home), server=server.url, code=code, passphrase=PASSPHRASE,
        root=root, org_id=org, user_id=f"{org}-user", device_id=f"{org}-device", params=FAST,
    )  # fmt: skip
    client.root = root  # type: ignore[attr-defined]
    return client


async def set_up(server, home: Path) -> dict[str, Client]:
    """The WCO, 60 administrations and the hostile one enrolled, the charter published with
    each administration's code, everyone joined and admitted."""
    clients = {"wco": await enrol(server, home, "wco", "secretariat", True)}
    for org in [*map(org_of, CODES), HOSTILE]:
        clients[org] = await enrol(server, home, org, "customs-administration", False)
    wco = clients["wco"]
    members = [Member("wco", "wco", "secretariat", "coordinator", wco.root.verify_key)]
    members += [
        Member(org_of(c), org_of(c), "customs-administration", "customs",
               clients[org_of(c)].root.verify_key, (c,))
        for c in CODES
    ]  # fmt: skip
    members.append(
        Member(HOSTILE, HOSTILE, "customs-administration", "customs",
               clients[HOSTILE].root.verify_key, (HOSTILE_CODE,))
    )  # fmt: skip
    draft = Charter.create(
        operation_id=OP, code="STOP VI", name="Operation STOP VI", starts_at=wco.now(),
        ends_at=wco.now() + 30 * 86400, members=members, areas=AREAS, issued_at=wco.now() - 5,
    )  # fmt: skip
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    await wco.create_operation(draft, user_key)
    for org, client in clients.items():
        if org != "wco":
            await client.join(OP, wco.root.verify_key.key_id)
    await wco.admit()
    for client in clients.values():
        await client.close()
    return clients


# What it checks is computed on the client; the backends' storage of the same submissions is
# covered file by file elsewhere, so the minute this takes is spent once, on SQLite.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_60_administration_operation_reports_the_honest_totals_despite_a_hostile_member(
    server, tmp_path, capsys, monkeypatch
):
    """Sixty administrations each submit their own CSV with `opseal submit seizures`; a hostile
    member first posts forged records under other countries' names and squats their record
    ids; the coordinator's `opseal report --format json` equals the honest totals exactly and
    lists one exclusion per forgery, naming the hostile organisation and the claimed country."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("OPSEAL_PROFILE", raising=False)
    await set_up(server, tmp_path)
    rng = random.Random(12)
    files = {code: records_of(code, rng) for code in CODES}
    honest = [r for code in CODES for r in files[code]]
    honest += records_of(HOSTILE_CODE, rng)  # the hostile member's own, genuine records
    want = honest_totals(honest)

    hostile = await Client.open(Profile(f"{HOSTILE}-device", tmp_path), PASSPHRASE)
    try:
        await hostile.sync()
        await hostile.post_seizures(OP, [r for r in honest if r["reporting_country"] == "XK"])
        victims = CODES[::6]
        forged = [
            {**files[c][0], "goods": [{"category": "medicines", "quantity_items": 9_999_999}]}
            for c in victims
        ]
        squat_ids = [content.record_message_id(OP, org_of(c), files[c][0]) for c in victims]
        hostile.outbox.enqueue(OP, "seizures", [("seizure", r) for r in forged],
                               message_ids=squat_ids)  # fmt: skip
        assert await hostile.flush() == len(forged)
    finally:
        await hostile.close()

    opseal = Cli(capsys, tmp_path)
    with structlog.testing.capture_logs():
        for code in CODES:
            path = tmp_path / f"{code}.csv"
            await asyncio.to_thread(write_seizures_csv, path, files[code])
            run = await opseal(f"{org_of(code)}-device", "--json", "submit", "seizures",
                               str(path), "--op", OP)  # fmt: skip
            assert run.code == 0, (code, run.err)
            assert len(run.json["message_ids"]) == len(files[code])
        run = await opseal("wco-device", "--json", "report", OP, "--format", "json")
    assert run.code == 4, run.err  # exclusions are integrity warnings
    report = run.json
    totals = report["totals"]
    for key in ("administrations", "cases", "seizures", "goods_lines", "items"):
        assert totals[key] == want[key], key
    assert Decimal(str(totals["weight_kg"])) == want["weight_kg"].quantize(GRAM)
    assert {c: v["seizures"] for c, v in report["by_country"].items()} == want["by_country"]
    assert {c: v["items"] for c, v in report["by_country"].items()} == want["items_by_country"]
    assert len(report["excluded"]) == len(victims)
    for item, code in zip(report["excluded"], victims, strict=True):
        assert item["org"] == HOSTILE
        assert f"{HOSTILE} may not report for {code}" in item["reason"]
