"""Guarded and irreversible actions through ``opseal`` (issue 13): ``op phase`` asks, explains
and refuses to skip; ``release --keep`` erases the free text not kept and previews the copy;
``download`` does not overwrite; imports carry handling codes, pick the data sheet and read
decimal commas only when told; database and key files are private.

One world (the ``onboarded`` operation) serves every step, on SQLite: the checks are the
client's.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys

import pytest
import structlog

from opseal.client import cli
from opseal.client.seizures import COLUMNS
from opseal.server.cli import exposed_files
from opseal.server.services import instance as admin
from opseal.server.storage.db import sqlite_path

from .conftest import FAST, PASSPHRASE, enrol_client, grant_reporting
from .test_cli import Run

OP = "op-stop-v"
HEADER = ["record_id", "case_ref", "reporting_country", "seizure_date", "transport_mode",
          "ecommerce", "category", "description", "weight_kg", "concealment", "offence",
          "remarks", "consignor", "handling"]  # fmt: skip
ROWS = [
    # personal data and no handling cell: H2 by default
    ["FR-P", "C-1", "FR", "2025-05-13", "postal", "yes", "medicines", "blister packs", 2.5,
     "false bottom", "smuggling by J. D.", "tip-off from informant 7", "J. Doe", None],
    # personal data, and the file says H0
    ["FR-Q", "C-2", "FR", "2025-05-13", "postal", "no", "ipr", "watches", 1, None, None, None,
     "A. N. Other", "h0"],
    # no personal data: the --handling default
    ["FR-R", "C-3", "FR", "2025-05-14", "express", "no", "drugs", None, None, None, None, None,
     None, None],
]  # fmt: skip

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def opseal(onboarded, capsys, monkeypatch):
    """``opseal`` in-process on the ``onboarded`` profiles (a worker thread, so the test's
    loop keeps serving)."""
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


async def subprocess_opseal(home, org: str, *argv: str) -> Run:
    """``opseal`` as its own process, stdin not a terminal."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opseal.client.cli", "--home", str(home),
        "--profile", f"{org}-device", *argv,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "OPSEAL_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    out, err = await proc.communicate()
    return Run(proc.returncode or 0, out.decode(), err.decode())


def workbook(path) -> None:
    """An instructions sheet first, then the data."""
    from openpyxl import Workbook

    book = Workbook()
    notes = book.active
    notes.title = "Instructions"
    notes.append(["How to fill in this workbook: one goods line per row, " * 20])
    data = book.create_sheet("Data")
    data.append(HEADER)
    for row in ROWS:
        data.append(row)
    book.save(path)


async def test_imports_and_irreversible_actions_are_guarded(onboarded, opseal, server, tmp_path):
    """An XLSX with an instructions sheet first is read from its data sheet; a record with
    personal data is H2 unless its handling cell says otherwise, others get --handling;
    decimal commas are read only when asked. ``release --keep`` previews and erases every
    free-text field not kept (``--clear`` is refused, naming ``--keep``), on an H2 record its
    originator permitted; ``op phase`` refuses unasked without a terminal, explains the phase
    and refuses to skip one without --force; ``download`` keeps an existing file unless
    --clobber; profile folder and files are private; an enrolment with a mistyped --org names
    the organisation the code was issued for."""
    await grant_reporting(onboarded, {"fr-customs": ("FR",)})
    book = tmp_path / "national.xlsx"
    await asyncio.to_thread(workbook, book)
    sent = await opseal("fr-customs", "--json", "submit", "seizures", str(book), "--op", OP,
                        "--handling", "H1")  # fmt: skip
    assert sent.code == 0, sent.err
    assert sent.json["submitted"] == 3
    wco = onboarded.clients["wco"]
    await wco.sync()
    codes = {m.json()["record_id"]: m.handling for m in wco.read(OP, "seizures")}
    assert codes == {"FR-P": "H2", "FR-Q": "H0", "FR-R": "H1"}

    wrong = await opseal("fr-customs", "submit", "seizures", str(book), "--op", OP,
                         "--sheet", "Instructions")  # fmt: skip
    assert wrong.code == 2
    assert "sheet 'Instructions'" in wrong.err
    assert "not a record sheet" in wrong.err
    assert len(wrong.err) - len(str(book)) < 200  # one short line, not the whole header

    csv = tmp_path / "semicolons.csv"
    csv.write_text(";".join((*COLUMNS[:7], "weight_kg")) + "\n"
                   "FR-S;C-4;FR;2025-05-15;road;no;drugs;12,5\n")  # fmt: skip
    refused = await opseal("fr-customs", "--json", "submit", "seizures", str(csv), "--op", OP)
    assert refused.code == 1
    assert "--decimal-comma" in refused.json["rejected"][0]["reason"]
    read = await opseal("fr-customs", "submit", "seizures", str(csv), "--op", OP,
                        "--decimal-comma")  # fmt: skip
    assert read.code == 0, read.err
    await wco.sync()
    [s] = [m.json() for m in wco.read(OP, "seizures") if m.json()["record_id"] == "FR-S"]
    assert s["goods"][0]["weight_kg"] == 12.5

    fr, brandx = onboarded.clients["fr-customs"], onboarded.clients["brandx"]
    await fr.sync()
    h2 = next(m.message_id for m in fr.read(OP, "seizures") if m.json()["record_id"] == "FR-P")
    assert (await opseal("fr-customs", "permit-release", h2)).code == 0

    nothing = await opseal("brandx", "report", OP)
    assert nothing.code == 0, nothing.err
    assert "No seizure record has been released to brandx" in nothing.out
    assert "released records only" in nothing.out

    old = await opseal("wco", "release", h2, "--to", "stakeholders", "--clear", "description")
    assert old.code == 2
    assert "--keep" in old.err
    preview = await opseal("wco", "--json", "release", h2, "--to", "stakeholders",
                           "--keep", "description", "--dry-run")  # fmt: skip
    assert preview.code == 0, preview.err
    erased = {"remarks", "concealment", "offence", "persons"}
    assert erased <= set(preview.json["erased"])
    await brandx.sync()
    assert brandx.read(OP, "stakeholders") == []  # a dry run releases nothing
    done = await opseal("wco", "--json", "release", h2, "--to", "stakeholders",
                        "--keep", "description")  # fmt: skip
    assert done.code == 0, done.err
    await brandx.sync()
    [copy] = brandx.read(OP, "stakeholders")
    record = copy.json()["record"]
    assert record["goods"][0]["description"] == "blister packs"
    assert not erased & set(record)
    assert "tip-off" not in json.dumps(record)
    assert "J. Doe" not in json.dumps(record)

    report = await opseal("brandx", "--json", "report", OP)
    assert report.code == 0, report.err
    assert report.json["covers"] == "released"
    assert report.json["totals"]["seizures"] == 1

    late = await enrol_client(server, onboarded.home, "de-customs", "de-2", "de2-device",
                              onboarded.roots["de-customs"])  # fmt: skip
    await late.join(OP, onboarded.roots["wco"].verify_key.key_id)
    await late.close()
    waiting = await opseal("de2", "read", OP, "seizures")
    assert waiting.code == 0, waiting.err
    assert waiting.out.startswith("Waiting to be admitted to seizures (asked at ")

    unasked = await subprocess_opseal(onboarded.home, "wco", "op", "phase", OP, "active")
    assert unasked.code == 2
    assert "no terminal" in unasked.err
    assert "--yes" in unasked.err
    assert "members post seizures" in unasked.err  # what the phase means
    skip = await opseal("wco", "op", "phase", OP, "follow-up", "--yes")
    assert skip.code == 2
    assert "skips active" in skip.err
    assert "--force" in skip.err
    assert (await opseal("wco", "--json", "op", "show", OP)).json["phase"] == "preparation"
    moved = await opseal("wco", "op", "phase", OP, "active", "--yes")
    assert moved.code == 0, moved.err

    first, again = [(await opseal("wco", "--json", "audit", "verify")) for _ in range(2)]
    assert first.code == again.code == 0, first.err
    assert again.json["size"] == first.json["size"]  # verifying appended nothing (no login)
    log = await opseal("wco", "--json", "audit", "log", "--kind", "phase-changed")
    assert log.code == 0, log.err
    assert [(e["operation"], e["previous"], e["phase"]) for e in log.json["entries"]] == [
        (OP, "preparation", "active")
    ]
    later = await opseal("wco", "audit", "log", "--since", "2999-01-01")
    assert later.out.startswith("No entries to show; the verified log holds")

    paper = tmp_path / "seal.bin"
    paper.write_bytes(b"seal" * 1000)
    attached = await opseal("fr-customs", "--json", "attach", OP, "seizures", str(paper))
    assert attached.code == 0, attached.err
    dest = tmp_path / "mine.bin"
    dest.write_bytes(b"do not lose me")
    kept = await opseal("wco", "download", attached.json["message_id"], str(dest))
    assert kept.code == 2
    assert "--clobber" in kept.err
    assert dest.read_bytes() == b"do not lose me"
    clobbered = await opseal("wco", "download", attached.json["message_id"], str(dest),
                             "--clobber")  # fmt: skip
    assert clobbered.code == 0, clobbered.err
    assert dest.read_bytes() == paper.read_bytes()

    await admin.create_organisation(server.ctx, "nl-customs", "NL", "customs-administration")
    code = await admin.create_enrolment_code(server.ctx, "nl-customs")
    assert (await opseal("nl", "org", "keygen")).code == 0
    typo = await opseal("nl", "enrol", "--server", server.url, "--code", code, "--org",
                        "nl-custom", "--user", "focal", "--device", "nl-laptop")  # fmt: skip
    assert typo.code == 1
    assert "issued for 'nl-customs', not 'nl-custom'" in typo.err
    assert "--org nl-customs" in typo.err  # the hint
    assert "invalid_signature" not in typo.err

    profile = onboarded.home / "wco-device"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o700
    for name in ("state.db", "device.key"):
        assert stat.S_IMODE((profile / name).stat().st_mode) == 0o600, name


def test_server_database_is_private_and_serve_warns_otherwise(settings):
    """The SQLite database holding the log signing key is created 0600 in a 0700 folder, and
    ``serve`` warns once others may read it."""
    from opseal.server.storage.db import make_engine

    db = sqlite_path(settings.database_url)
    assert db is not None
    folder = db.parent / "fresh"
    url = f"sqlite+aiosqlite:///{folder / 'opseal.db'}"
    make_engine(url)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "opseal.db").stat().st_mode) == 0o600
    fresh = settings.replace(database_url=url)
    assert exposed_files(fresh) == []
    (folder / "opseal.db").chmod(0o644)
    [warning] = exposed_files(fresh)
    assert "opseal.db holds the audit log signing key" in warning
    assert "chmod 600" in warning
