"""Export of decrypted seizure records and sanitised release to stakeholders (issue 5)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from opseal.client import cli, export, release
from opseal.client.api import ApiClient
from opseal.client.errors import NotFoundError, TransportError

from .conftest import FAST, PASSPHRASE

OP = "op-stop-v"
PERSONS = {
    "consignor": "Jean Dupont, 1 rue de la Paix, Paris",
    "consignee": "Erika Mustermann, Hauptstrasse 5, Berlin",
}


def record(record_id: str, country: str = "FR", **extra: Any) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "case_ref": f"C-{record_id}",
        "reporting_country": country,
        "seizure_date": "2025-05-13",
        "transport_mode": "postal",
        "ecommerce": True,
        "goods": [
            {"category": "medicines", "description": "blister packs, Jean's parcel",
             "quantity_items": 1000, "weight_kg": 2.5},
            {"category": "ipr", "description": "fake watches", "brand": "BrandX",
             "quantity_items": 40},
        ],
        "persons": PERSONS,
        "remarks": "tip-off from informant 7",
        "concealment": "hidden in a toy",
        **extra,
    }  # fmt: skip


async def submit(client, rec: dict[str, Any], handling: str) -> str:
    await client.sync()  # the admitting commit, at first
    [message_id] = await client.post_seizures(OP, [rec], handling=handling)
    return message_id


async def sync_all(onboarded) -> None:
    for client in onboarded.clients.values():
        await client.sync()


async def declarations(client) -> list[dict[str, Any]]:
    size = (await client.api.audit_checkpoint()).size
    entries = await client.api.audit_entries(max(0, size - 1000), size)
    shown = [e.entry for e in entries if e.entry is not None]  # need to know
    return [e for e in shown if e["event"] == "client-declaration"]


# -- the CLI, on the fixture's profiles -------------------------------------------------------
@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def opseal(onboarded, capsys, monkeypatch):
    """``opseal`` on the profiles of the ``onboarded`` clients (run in a worker thread while
    the test's loop serves)."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)

    async def run(org: str, *argv: str) -> Run:
        capsys.readouterr()
        args = ["--home", str(onboarded.home), "--profile", f"{org}-device", *argv]
        with structlog.testing.capture_logs():
            code = await asyncio.to_thread(cli.main, args)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# -- export ------------------------------------------------------------------------------------
async def test_export_leaves_personal_data_out_unless_asked_and_declares_it(onboarded, opseal):
    """Without --include-personal no consignor or consignee is exported; with it, H0 and H1
    records carry them (H1 with a warning) and a client-declaration audit entry names the
    device and organisation."""
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await submit(fr, record("FR-0"), "H0")
    await submit(fr, record("FR-1"), "H1")

    plain = await opseal("de-customs", "export", OP)
    assert plain.code == 0, plain.err
    rows = list(csv.DictReader(io.StringIO(plain.out)))
    assert {r["record_id"] for r in rows} == {"FR-0", "FR-1"}
    assert len(rows) == 4  # one row per goods line
    assert {r["category"] for r in rows} == {"medicines", "ipr"}
    for secret in ("consignor", "consignee", "Dupont", "Mustermann", "persons"):
        assert secret not in plain.out
    assert await declarations(de) == []

    output = onboarded.home / "export.json"
    full = await opseal(
        "de-customs", "--json", "export", OP, "--format", "json", "--output", str(output),
        "--include-personal",
    )  # fmt: skip
    assert full.code == 0, full.err
    assert json.loads(full.out)["records"] == 2
    assert "not for judicial use" in full.err
    assert output.stat().st_mode & 0o077 == 0
    exported = json.loads(output.read_text())
    assert exported["include_personal"] is True
    assert [r["record"]["persons"] for r in exported["records"]] == [PERSONS, PERSONS]
    assert {r["handling"] for r in exported["records"]} == {"H0", "H1"}
    [entry] = await declarations(de)
    assert entry["action"] == "export"
    assert entry["operation"] == OP
    assert (entry["device"], entry["org"]) == ("de-customs-device", "de-customs")
    assert (entry["records"], entry["include_personal"]) == (2, True)
    assert "persons" not in json.dumps(entry)
    assert "Dupont" not in json.dumps(entry)


async def test_export_with_personal_data_is_refused_when_the_declaration_fails(
    onboarded, opseal, monkeypatch
):
    """If the server does not record the declaration, nothing is written."""
    await submit(onboarded.clients["fr-customs"], record("FR-0"), "H0")

    async def unreachable(self, *args, **kwargs):
        raise TransportError("connection refused")

    monkeypatch.setattr(ApiClient, "declare", unreachable)
    output = onboarded.home / "out.csv"
    run = await opseal("de-customs", "export", OP, "--output", str(output), "--include-personal")
    assert run.code == 1
    assert run.err.startswith("opseal: the export with personal data could not be declared")
    assert len(run.err.splitlines()) == 1
    assert not output.exists()


async def test_handling_codes_h2_and_h3_refuse_personal_export_except_to_the_originator(
    onboarded, opseal
):
    """H2 and H3 records: personal data is exported only by the originating organisation;
    anyone else is refused with the reason, and may still export them without it."""
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    h2 = await submit(fr, record("FR-2"), "H2")
    h3 = await submit(fr, record("FR-3"), "H3")
    await sync_all(onboarded)

    for reader in (de, onboarded.clients["wco"]):
        with pytest.raises(export.ExportRefused) as refused:
            export.collect(
                reader.read(OP), reader.org_id, await reader.charter(OP), include_personal=True
            )
        message = str(refused.value)
        assert h2 in message
        assert "no further dissemination" in message
        assert h3 in message
        assert "read the restrictions" in message
        rows = export.collect(reader.read(OP), reader.org_id, await reader.charter(OP))
        assert {r.record["record_id"] for r in rows} == {"FR-2", "FR-3"}
        assert all("persons" not in r.record for r in rows)

    own = export.collect(fr.read(OP), fr.org_id, await fr.charter(OP), include_personal=True)
    assert [r.record["persons"] for r in own] == [PERSONS, PERSONS]

    run = await opseal("de-customs", "export", OP, "--include-personal")
    assert run.code == 1
    assert run.err.startswith("opseal: 2 record(s) may not be exported with personal data")
    assert "export without --include-personal" in run.err
    assert run.out == ""
    assert await declarations(de) == []


def test_personal_fields_come_from_the_schema_markers():
    """persons is marked x-personal-data in the shipped schema; those fields are stripped."""
    assert "persons" in export.PERSONAL_FIELDS
    rec = record("FR-9")
    assert "persons" not in export.strip_personal(rec)
    assert export.strip_personal(rec)["remarks"] == rec["remarks"]


async def test_the_declaration_endpoint_needs_a_member_and_a_known_action(onboarded):
    api = onboarded.clients["brandx"].api
    assert await api.declare("export", OP, 0, include_personal=False) >= 0
    with pytest.raises(NotFoundError):
        await api.declare("export", "op-unknown", 1, include_personal=True)
    with pytest.raises(Exception, match="action"):
        await api.declare("shred", OP, 1, include_personal=True)


# -- release -----------------------------------------------------------------------------------
async def test_a_stakeholder_reads_the_sanitised_release_and_nothing_else(onboarded):
    """The coordinator releases an H0 record: brandx reads the copy in stakeholders, without
    personal data or uncleared free text, and still cannot read the seizures area."""
    fr, wco, brandx = (onboarded.clients[o] for o in ("fr-customs", "wco", "brandx"))
    source = await submit(fr, record("FR-0"), "H0")
    await wco.sync()
    release_id = await wco.release(source, "stakeholders", keep=["description"])

    await brandx.sync()
    [copy] = brandx.read(OP)
    assert (copy.message_id, copy.area, copy.content_type) == (release_id, "stakeholders",
                                                                "release")  # fmt: skip
    assert copy.org == "wco"
    assert copy.handling == "H0"
    body = copy.json()
    assert body["source_message_id"] == source
    assert body["released_by_org"] == "wco"
    released = body["record"]
    assert released["record_id"] == "FR-0"
    assert released["reporting_country"] == "FR"
    assert [g["quantity_items"] for g in released["goods"]] == [1000, 40]
    assert released["goods"][1]["brand"] == "BrandX"
    assert released["goods"][0]["description"] == "blister packs, Jean's parcel"  # cleared
    assert "remarks" not in released
    assert "concealment" not in released
    text = copy.plaintext.decode()
    for secret in ("persons", "consignor", "consignee", "Dupont", "Mustermann", "informant",
                   "toy"):  # fmt: skip
        assert secret not in text
    assert brandx.read(OP, "seizures") == []
    assert brandx.store.latest_state(OP, "seizures") is None  # never a member

    uncleared = await wco.release(source, "stakeholders")
    await brandx.sync()
    [second] = [m for m in brandx.read(OP) if m.message_id == uncleared]
    assert all("description" not in g for g in second.json()["record"]["goods"])


async def test_h2_release_needs_the_originators_permission_and_h3_is_refused(onboarded):
    fr, wco, brandx = (onboarded.clients[o] for o in ("fr-customs", "wco", "brandx"))
    h2 = await submit(fr, record("FR-2"), "H2")
    h3 = await submit(fr, record("FR-3"), "H3")
    await wco.sync()
    with pytest.raises(release.ReleaseRefused, match="has not permitted"):
        await wco.release(h2, "stakeholders")
    with pytest.raises(release.ReleaseRefused, match="H3"):
        await wco.release(h3, "stakeholders")

    # a permission from another organisation does not count
    de = onboarded.clients["de-customs"]
    await de.sync()
    await de.post(OP, "seizures", "text", release.permission(h2))
    await wco.sync()
    with pytest.raises(release.ReleaseRefused, match="has not permitted"):
        await wco.release(h2, "stakeholders")

    await fr.post(OP, "seizures", "text", release.permission(h2))
    await wco.sync()
    release_id = await wco.release(h2, "stakeholders")
    await brandx.sync()
    [copy] = brandx.read(OP)
    assert copy.message_id == release_id
    assert copy.handling == "H2"
    assert "persons" not in copy.json()["record"]


async def test_only_a_coordinator_releases_and_only_into_a_stakeholder_area(onboarded):
    fr, wco = onboarded.clients["fr-customs"], onboarded.clients["wco"]
    source = await submit(fr, record("FR-0"), "H0")
    await sync_all(onboarded)
    with pytest.raises(release.ReleaseRefused, match="only a coordinator"):
        await fr.release(source, "stakeholders")
    with pytest.raises(release.ReleaseRefused, match="stakeholders do not read"):
        await wco.release(source, "plan")
    with pytest.raises(release.ReleaseRefused, match="never released"):
        await wco.release(source, "stakeholders", keep=["persons"])
    assert onboarded.clients["brandx"].read(OP) == []


def test_sanitise_keeps_structure_and_drops_unknown_free_text():
    rec = record("FR-0", platform="shop.example", offence="smuggling by J. D.", attachments=[])
    clean = release.sanitise(rec)
    assert clean["platform"] == "shop.example"
    for gone in ("offence", "remarks", "concealment", "persons", "attachments"):
        assert gone not in clean
    assert release.sanitise(rec, ["remarks"])["remarks"] == "tip-off from informant 7"


async def test_cli_release_and_permit_release(onboarded, opseal):
    fr, brandx = onboarded.clients["fr-customs"], onboarded.clients["brandx"]
    h2 = await submit(fr, record("FR-2"), "H2")

    refused = await opseal("wco", "release", h2, "--to", "stakeholders")
    assert refused.code == 1
    assert refused.err.startswith(f"opseal: {h2} is H2 (no further dissemination")
    assert len(refused.err.splitlines()) == 1

    not_ours = await opseal("de-customs", "permit-release", h2)
    assert not_ours.code == 1
    assert "originating organisation" in not_ours.err
    permitted = await opseal("fr-customs", "permit-release", h2)
    assert permitted.code == 0, permitted.err

    customs = await opseal("fr-customs", "release", h2, "--to", "stakeholders")
    assert customs.code == 1
    assert "only a coordinator" in customs.err

    done = await opseal(
        "wco", "--json", "release", h2, "--to", "stakeholders", "--keep", "description", "remarks"
    )
    assert done.code == 0, done.err
    result = json.loads(done.out)
    assert result["source_message_id"] == h2
    assert result["area"] == "stakeholders"
    await brandx.sync()
    [copy] = brandx.read(OP)
    assert copy.message_id == result["message_id"]
    released = copy.json()["record"]
    assert released["remarks"] == "tip-off from informant 7"
    assert "persons" not in released
    assert "concealment" not in released

    exported = await opseal("brandx", "export", OP, "--format", "json")
    assert exported.code == 0, exported.err
    [row] = json.loads(exported.out)["records"]
    assert row["content_type"] == "release"
    assert row["record"]["record_id"] == "FR-2"
