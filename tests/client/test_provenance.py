"""Provenance of seizure records against the real server (design §15 "Provenance"): a record
counts for its sender organisation and the countries the charter lets it report for, no one
can occupy another member's message ids, and only the sender corrects its records."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import structlog

from opseal.client import cli, content, export
from opseal.client.release import ReleaseRefused
from opseal.client.report import Submission, checked_records
from opseal.client.seizures import write_seizures_csv

from .conftest import FAST, PASSPHRASE
from .test_cli import Cli

OP = "op-stop-v"


@pytest.fixture
def opseal(capsys, onboarded, monkeypatch) -> Cli:
    """The CLI on the enrolled profiles of ``onboarded`` (profile = device id)."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("OPSEAL_PROFILE", raising=False)
    with structlog.testing.capture_logs():
        yield Cli(capsys, onboarded.home)


def record(record_id: str, country: str, items: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "case_ref": f"C-{record_id}",
        "reporting_country": country,
        "seizure_date": "2025-05-13",
        "transport_mode": "postal",
        "ecommerce": True,
        "goods": [{"category": "medicines", "quantity_items": items}],
        **extra,
    }


async def sync_all(onboarded) -> None:
    for client in onboarded.clients.values():
        await client.sync()


async def post_as(client, area: str, content_type: str, payload: Any, message_id=None) -> str:
    """Post one message as any member could, with a message id of its choosing."""
    await client.sync()
    ids = [uuid.UUID(str(message_id))] if message_id else None
    [posted] = client.outbox.enqueue(OP, area, [(content_type, payload)], message_ids=ids)
    await client.flush()
    return posted


async def report(opseal, profile: str = "wco-device") -> dict[str, Any]:
    run = await opseal(profile, "--json", "report", OP)
    assert run.code in (0, 4), run.err
    return run.json


async def test_a_de_signed_record_claiming_fr_is_excluded_and_frances_genuine_record_counts(
    onboarded, opseal
):
    """German Customs posts France's record id with reporting_country FR and 9,999,999 items
    before France does: the report leaves it out with a reason naming de-customs and FR,
    counts France's genuine record, and export and release leave the forgery out too."""
    fr, de, wco = (onboarded.clients[o] for o in ("fr-customs", "de-customs", "wco"))
    await de.sync()
    [forged] = await de.post_seizures(OP, [record("FR-1", "FR", items=9_999_999)])
    await fr.sync()
    [genuine] = await fr.post_seizures(OP, [record("FR-1", "FR", items=40)])
    assert forged != genuine

    result = await report(opseal)
    assert result["totals"]["seizures"] == 1
    assert result["totals"]["items"] == 40
    assert result["by_country"]["FR"]["items"] == 40
    [excluded] = result["excluded"]
    assert (excluded["message_id"], excluded["org"]) == (forged, "de-customs")
    assert "de-customs may not report for FR" in excluded["reason"]
    assert "DE" in excluded["reason"]  # what the charter does let it report for

    await sync_all(onboarded)
    rows = export.collect(wco.read(OP), wco.org_id, await wco.charter(OP))
    assert [(r.message.message_id, r.message.org) for r in rows] == [(genuine, "fr-customs")]
    with pytest.raises(ReleaseRefused, match="de-customs may not report for FR"):
        await wco.release(forged, "stakeholders")
    assert await wco.release(genuine, "stakeholders")


async def test_a_rights_holder_posting_under_a_french_record_id_does_not_block_it(
    onboarded, opseal
):
    """A rights holder posts a text in its own stakeholder area under the message id of
    France's future record, and German Customs a seizure under it in the seizures area;
    France's record is still accepted and is the one the report counts."""
    fr, de, brandx = (onboarded.clients[o] for o in ("fr-customs", "de-customs", "brandx"))
    genuine_record = record("FR-7", "FR", items=123)
    squatted = content.record_message_id(OP, "fr-customs", genuine_record)
    await post_as(brandx, "stakeholders", "text", content.text("mine now"), squatted)
    await post_as(de, "seizures", "seizure", record("FR-7", "FR", items=5), squatted)

    await fr.sync()
    assert await fr.post_seizures(OP, [genuine_record]) == [str(squatted)]
    assert await fr.outbox.flush() == 0
    assert fr.store.pending(10, OP, "seizures") == []

    result = await report(opseal)
    assert result["totals"]["seizures"] == 1
    assert result["totals"]["items"] == 123
    assert [(e["org"], e["message_id"]) for e in result["excluded"]] == [
        ("de-customs", str(squatted))
    ]
    await fr.sync()
    assert [m.org for m in fr.read(OP, "seizures") if m.message_id == str(squatted)] == [
        "de-customs",
        "fr-customs",
    ]


async def test_another_orgs_record_under_the_same_record_id_does_not_hold_a_submission(
    onboarded, opseal, tmp_path
):
    """German Customs posts a seizure with France's record id and other content before France
    submits it: `submit seizures` (without --correct) sends France's record as new — another
    organisation's message is never taken for an earlier version of France's own."""
    fr, de = (onboarded.clients[o] for o in ("fr-customs", "de-customs"))
    await post_as(de, "seizures", "seizure", record("FR-9", "FR", items=5))
    await fr.sync()
    path = tmp_path / "fr.csv"
    await asyncio.to_thread(write_seizures_csv, path, [record("FR-9", "FR", items=9)])
    sent = await opseal("fr-customs-device", "--json", "submit", "seizures", str(path),
                        "--op", OP)  # fmt: skip
    assert sent.code == 0, sent.err
    assert sent.json["message_ids"] == [
        str(content.record_message_id(OP, "fr-customs", record("FR-9", "FR")))
    ]
    assert "differs from the version" not in sent.err


async def test_a_correction_supersedes_the_senders_own_record_and_another_orgs_is_refused(
    onboarded, opseal, tmp_path
):
    """France corrects its record through `submit seizures --correct` (without it, the
    changed record is named and not sent); the report counts the corrected version only. A
    correction of France's record by the coordinator or by German Customs, and a stale
    correction of the superseded version, are each left out with a reason."""
    fr, de, wco = (onboarded.clients[o] for o in ("fr-customs", "de-customs", "wco"))
    await fr.sync()
    [original] = await fr.post_seizures(OP, [record("FR-2", "FR", items=100)])
    path = tmp_path / "fr.csv"
    await asyncio.to_thread(write_seizures_csv, path, [record("FR-2", "FR", items=150)])

    held = await opseal("fr-customs-device", "--json", "submit", "seizures", str(path),
                        "--op", OP)  # fmt: skip
    assert held.code == 0, held.err
    assert held.json["message_ids"] == []
    assert f"differs from the version your organisation submitted (message {original})" in (
        held.err
    )
    corrected = await opseal("fr-customs-device", "--json", "submit", "seizures", str(path),
                             "--op", OP, "--correct")  # fmt: skip
    assert corrected.code == 0, corrected.err
    [correction] = corrected.json["message_ids"]
    assert correction != original
    again = await opseal("fr-customs-device", "--json", "submit", "seizures", str(path),
                         "--op", OP, "--correct")  # fmt: skip
    assert again.json["message_ids"] == [correction]

    takeover = {"supersedes": original, "record": record("FR-2", "FR", items=1)}
    by_wco = await post_as(wco, "seizures", "correction", takeover)
    by_de = await post_as(de, "seizures", "correction", takeover)
    stale = await post_as(fr, "seizures", "correction", takeover)

    result = await report(opseal)
    assert result["totals"]["seizures"] == 1
    assert result["totals"]["items"] == 150
    reasons = {e["message_id"]: (e["org"], e["reason"]) for e in result["excluded"]}
    assert set(reasons) == {by_wco, by_de, stale}
    assert reasons[by_wco][0] == "wco"
    assert f"wco may not correct message {original} of fr-customs" in reasons[by_wco][1]
    assert f"de-customs may not correct message {original} of fr-customs" in reasons[by_de][1]
    assert f"already superseded by message {correction}" in reasons[stale][1]

    await sync_all(onboarded)
    with pytest.raises(ReleaseRefused, match="not the latest version"):
        await wco.release(original, "stakeholders")
    released = await wco.release(correction, "stakeholders")
    await onboarded.clients["brandx"].sync()
    [copy] = onboarded.clients["brandx"].read(OP, "stakeholders")
    assert copy.message_id == released
    assert copy.json()["record"]["goods"][0]["quantity_items"] == 150


async def test_submit_seizures_rejects_rows_of_a_country_the_organisation_does_not_report_for(
    onboarded, opseal, tmp_path
):
    """`opseal submit seizures` rejects a row claiming another country in its
    reporting_country column, naming the organisation and the country, and submits the rest."""
    path = tmp_path / "mixed.csv"
    await asyncio.to_thread(write_seizures_csv, path, [record("DE-1", "DE"), record("FR-1", "FR")])
    run = await opseal("de-customs-device", "--json", "submit", "seizures", str(path), "--op", OP)
    assert run.code == 1
    assert len(run.json["message_ids"]) == 1
    [rejected] = run.json["rejected"]
    assert (rejected["row"], rejected["column"], rejected["record_id"]) == (
        3, "reporting_country", "FR-1"
    )  # fmt: skip
    assert "de-customs reports for DE in this operation's charter, not FR" in rejected["reason"]
    result = await report(opseal)
    assert (result["totals"]["seizures"], result["excluded"]) == (1, [])


def test_versions_follow_the_senders_chain_only():
    """A correction must keep the record id, stay in its record's area and name the latest
    version; a correction may also move a forged country back to an allowed one."""
    codes = {"fr": ("FR",), "de": ("DE",)}
    subs = [
        Submission("m1", "fr", record("R1", "FR", 1), area="seizures"),
        Submission("m2", "de", record("R1", "FR", 2), area="seizures"),
        Submission(
            "m3", "fr", {"supersedes": _uid("m1"), "record": record("R2", "FR")}, "correction",
            "seizures",
        ),
        Submission("m4", "de", {"supersedes": _uid("m2"), "record": record("R1", "DE", 4)},
                   "correction", "seizures"),
        Submission("m5", "fr", {"supersedes": _uid("m1"), "record": record("R1", "FR", 5)},
                   "correction", "alerts"),
    ]  # fmt: skip
    records, excluded = checked_records(_ids(subs), codes)
    assert sorted((r["reporting_country"], r["goods"][0]["quantity_items"]) for r in records) == [
        ("DE", 4),
        ("FR", 1),
    ]
    reasons = {e.message_id: e.reason for e in excluded}
    assert "de may not report for FR" in reasons[_uid("m2")]
    assert "a correction keeps the record id" in reasons[_uid("m3")]
    assert "corrects a record of area 'seizures' from area 'alerts'" in reasons[_uid("m5")]


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, name))


def _ids(subs: list[Submission]) -> list[Submission]:
    return [Submission(_uid(s.message_id), s.org, s.payload, s.content_type, s.area) for s in subs]
