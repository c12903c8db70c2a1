"""The ``opseal`` command line, driven in-process against the real server.

``main`` runs its own event loop, so each call goes to a worker thread while the test's loop
keeps serving; output is read from capsys. The passphrase comes from ``OPSEAL_PASSPHRASE``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from opseal.client import cli
from opseal.client.client import Client
from opseal.client.profile import Profile
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.group import GroupState
from opseal.crypto.keys import SigningKey, VerifyKey
from opseal.server.services import instance as admin

from .conftest import FAST, PASSPHRASE

OP = "op-stop-v"
CSV = """\
record_id,case_ref,reporting_country,seizure_date,transport_mode,ecommerce,category,quantity_items
FR-1,C-1,FR,2025-05-13,postal,yes,medicines,1000
FR-1,C-1,FR,2025-05-13,postal,yes,ipr,40
FR-2,C-2,FR,2025-05-14,express,no,drugs,
FR-3,C-3,FRANCE,2025-05-14,express,no,drugs,
"""


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs ``opseal`` with a home folder and a profile, and captures what it prints."""

    def __init__(self, capsys, home) -> None:
        self.capsys, self.home = capsys, home

    async def __call__(self, profile: str, *argv: str) -> Run:
        self.capsys.readouterr()
        args = ["--home", str(self.home), "--profile", profile, *argv]
        code = await asyncio.to_thread(cli.main, args)
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def sync(self, profile: str, *argv: str) -> Run:
        """The same, from a test without an event loop (``main`` runs its own)."""
        self.capsys.readouterr()
        code = cli.main(["--home", str(self.home), "--profile", profile, *argv])
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)


@pytest.fixture
def opseal(capsys, tmp_path, monkeypatch) -> Iterator[Cli]:
    """The CLI with cheap key files, the passphrase in the environment, and the in-process
    server's logs kept out of the captured output."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("OPSEAL_PROFILE", raising=False)
    with structlog.testing.capture_logs():
        yield Cli(capsys, tmp_path / "home")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def onboard(opseal: Cli, server, org: str, profile: str, *, coordinator=False) -> dict:
    """The instance admin registers ``org``; its focal point creates the root key and enrols.
    Returns what `org keygen --json` printed: the root key and its fingerprint."""
    await admin.create_organisation(server.ctx, org, org.upper(), "customs-administration",
                                    can_coordinate=coordinator)  # fmt: skip
    key = (await opseal(profile, "org", "keygen", "--json")).json
    code = await admin.create_enrolment_code(server.ctx, org)
    run = await opseal(profile, "enrol", "--server", server.url, "--code", code, "--org", org,
                       "--user", f"{org}-fp", "--device", f"{org}-laptop")  # fmt: skip
    assert run.code == 0, run.err
    return key


async def test_onboarding_and_exchange_through_the_cli(opseal, server, tmp_path):
    """A coordinator creates an operation, a member joins and is admitted, and both exchange
    messages, a seizure file and acknowledgements, all through `opseal`."""
    wco_root = (await onboard(opseal, server, "wco", "wco", coordinator=True))["root_key"]
    fr_root = await onboard(opseal, server, "fr-customs", "fr")

    created = await opseal("wco", "--json", "op", "create", "--id", OP, "--code", "STOP V",
                           "--name", "Operation STOP V", "--start", "2025-05-12",
                           "--end", "2099-05-30", "--member", "fr-customs:customs:FR")  # fmt: skip
    assert created.code == 0, created.err
    members = {m["org_id"]: m for m in created.json["members"]}
    assert members["fr-customs"]["role"] == "customs"
    assert members["fr-customs"]["fingerprint"] == fr_root["fingerprint"]

    invited = (await opseal("fr", "--json", "op", "list")).json["operations"]
    assert [(o["operation_id"], o["coordinator_org"], o["joined"]) for o in invited] == [
        (OP, "wco", False)
    ]
    joined = await opseal("fr", "--json", "op", "join", OP, "--root-key", wco_root)
    assert joined.code == 0, joined.err
    assert joined.json["role"] == "customs"
    assert "seizures" in joined.json["areas"]
    admitted = await opseal("wco", "--json", "admit")
    assert admitted.json["admitted"] == ["fr-customs-laptop"]

    plan = await opseal("wco", "--json", "post", OP, "plan", "--text", "Operational Plan",
                        "--requires-ack")  # fmt: skip
    assert plan.code == 0, plan.err
    read = await opseal("fr", "--json", "read", OP)
    assert read.code == 0, read.err
    [message] = read.json["messages"]
    assert (message["message_id"], message["org"]) == (plan.json["message_id"], "wco")
    assert message["content"] == {"text": "Operational Plan"}
    assert read.json["warnings"] == []
    assert read.json["gaps"] == {}

    assert (await opseal("fr", "ack", plan.json["message_id"])).code == 0
    acks = (await opseal("wco", "--json", "acks", plan.json["message_id"])).json
    assert acks["pending_ack_orgs"] == []
    fr_status = next(o for o in acks["organisations"] if o["org_id"] == "fr-customs")
    assert fr_status["acked"] == ["fr-customs-laptop"]

    no_area = await opseal("fr", "read", OP, "plans")
    assert no_area.code == 1
    assert "has no area 'plans'" in no_area.err
    refused = await opseal("fr", "post", OP, "plan", "--text", "not mine to post")
    assert refused.code == 1
    assert "may not post in area 'plan'" in refused.err
    assert len(refused.err.strip().splitlines()) == 1

    csv_file = tmp_path / "seizures.csv"
    csv_file.write_text(CSV)
    submitted = await opseal("fr", "--json", "submit", "seizures", str(csv_file), "--op", OP)
    assert submitted.code == 1  # one row rejected, the rest submitted
    assert len(submitted.json["message_ids"]) == 2
    assert [(r["row"], r["column"]) for r in submitted.json["rejected"]] == [
        (5, "reporting_country")
    ]
    again = await opseal("fr", "--json", "submit", "seizures", str(csv_file), "--op", OP)
    assert again.json["message_ids"] == submitted.json["message_ids"]
    seizures = (await opseal("wco", "--json", "read", OP, "seizures")).json["messages"]
    assert sorted(m["content"]["record_id"] for m in seizures) == ["FR-1", "FR-2"]

    outbox = await opseal("fr", "--json", "outbox")
    assert outbox.json["pending"] == 0
    audit = await opseal("fr", "--json", "audit", "verify")
    assert audit.code == 0, audit.err
    assert audit.json["size"] == audit.json["entries_checked"] > 0
    charter = (await opseal("fr", "--json", "op", "charter", OP)).json
    assert (charter["version"], charter["signed_by"]) == (1, "wco-fp@wco")
    me = (await opseal("fr", "--json", "whoami")).json
    assert (me["org_id"], me["device_id"], me["server"]) == (
        "fr-customs", "fr-customs-laptop", server.url
    )  # fmt: skip


async def test_documents_alerts_and_tail_through_the_cli(opseal, server, tmp_path):
    """The coordinator attaches a file and sends an alert; the member downloads the file,
    answers the alert, and `tail` shows what arrived since its last sync."""
    wco_root = (await onboard(opseal, server, "wco", "wco", coordinator=True))["root_key"]
    await onboard(opseal, server, "fr-customs", "fr")
    await opseal("wco", "op", "create", "--id", OP, "--code", "STOP V", "--name", "STOP V",
                 "--start", "2025-05-12", "--end", "2099-05-30",
                 "--member", "fr-customs:customs")  # fmt: skip
    await opseal("fr", "op", "join", OP, "--root-key", wco_root)
    await opseal("wco", "admit")

    pdf = tmp_path / "plan.pdf"
    pdf.write_bytes(bytes(range(256)) * 1000)
    attached = await opseal("wco", "--json", "attach", OP, "plan", str(pdf), "--title", "Plan")
    assert attached.code == 0, attached.err
    [reference] = attached.json["content"]["attachments"]
    assert reference["file_key"] == "***"  # never printed
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    fetched = await opseal("fr", "--json", "download", attached.json["message_id"], str(downloads))
    assert fetched.code == 0, fetched.err
    assert (downloads / "plan.pdf").read_bytes() == pdf.read_bytes()

    alert = await opseal("wco", "--json", "alert", OP, "alerts", "--to", "fr-customs",
                         "--action", "Inspect CN123", "--deadline", "2099-01-31")  # fmt: skip
    assert alert.code == 0, alert.err
    assert (await opseal("wco", "sync")).code == 0  # tail starts after the alert
    answer = await opseal("fr", "--json", "respond", alert.json["message_id"],
                          "--outcome", "40 counterfeit watches seized")  # fmt: skip
    assert answer.code == 0, answer.err

    tail = await asyncio.wait_for(opseal("wco", "--json", "tail", "--count", "1"), 30)
    assert tail.code == 0, tail.err
    [line] = tail.out.splitlines()
    shown = json.loads(line)
    assert (shown["message_id"], shown["content_type"]) == (answer.json["message_id"],
                                                            "alert-response")  # fmt: skip
    assert shown["content"]["outcome"] == "40 counterfeit watches seized"


async def test_read_exits_4_and_lists_integrity_warnings(opseal, server):
    """A refused entry recorded for an area makes `read` list it and exit 4."""
    await onboard(opseal, server, "wco", "wco", coordinator=True)
    await opseal("wco", "op", "create", "--id", OP, "--code", "STOP V", "--name", "STOP V",
                 "--start", "2025-05-12", "--end", "2099-05-30")  # fmt: skip
    client = await Client.open(Profile("wco", opseal.home), PASSPHRASE, login=False)
    client.store.warn(OP, "plan", 7, "message-refused", "bad signature from device x")
    await client.close()
    read = await opseal("wco", "--json", "read", OP, "plan")
    assert read.code == 4
    assert [w["kind"] for w in read.json["warnings"]] == ["message-refused"]
    assert "bad signature from device x" in read.err
    assert (await opseal("wco", "read", OP, "plan", "--after", "7")).code == 0


async def test_an_unreachable_server_exits_3_with_one_line(opseal, server):
    """When the profile's server does not answer, commands exit 3 and say what to check."""
    await onboard(opseal, server, "wco", "wco", coordinator=True)
    profile = Profile("wco", opseal.home)
    info = await asyncio.to_thread(profile.info)
    info.server = f"http://127.0.0.1:{free_port()}"
    await asyncio.to_thread(profile.save_info, info)
    run = await opseal("wco", "sync", "--retry-for", "0")
    assert run.code == 3
    assert run.err.startswith(f"opseal: cannot reach the server at {info.server}")
    assert len(run.err.splitlines()) == 1


def test_help_lists_one_line_per_command_and_the_exit_codes(capsys):
    """`opseal --help` names every command on a line of its own, and the exit codes."""
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in cli.COMMANDS:
        name = " ".join(command.path)
        assert [line for line in text.splitlines() if line.strip().startswith(name + " ")]
    for code in range(5):
        assert f"\n  {code}  " in text


def test_bad_usage_exits_2_with_one_helpful_line(opseal):
    """Usage errors exit 2 and say, on one line, what was wrong and where to look."""
    missing = opseal.sync("x", "op", "create", "--id", "op-1")
    assert missing.code == 2
    assert missing.err.startswith("opseal: the following arguments are required: --code")
    assert "see `opseal op create --help`" in missing.err
    dates = ("--start", "2025-01-01", "--end", "2025-02-01")
    role = opseal.sync("x", "op", "create", "--id", "o", "--code", "O", "--name", "O", *dates,
                       "--member", "fr:chief")  # fmt: skip
    assert role.code == 2
    assert role.err == (
        "opseal: --member 'fr:chief': expected ORG:ROLE; "
        "ROLE is one of coordinator, customs, partner, stakeholder, observer\n"
    )
    date = opseal.sync("x", "op", "create", "--id", "o", "--code", "O", "--name", "O",
                       "--start", "12/05/2025", "--end", "2025-02-01")  # fmt: skip
    assert (date.code, "is not a date" in date.err) == (2, True)
    unknown = opseal.sync("x", "frobnicate")
    assert unknown.code == 2
    assert "invalid choice" in unknown.err


def test_missing_profile_says_how_to_create_it(opseal):
    """A command on a profile that was never enrolled exits 2 and points at `opseal enrol`."""
    run = opseal.sync("nobody", "--json", "whoami")
    assert run.code == 2
    assert "run `opseal enrol` first" in run.err
    assert run.json["error"]["exit_code"] == 2


def test_enrolling_against_an_unreachable_server_exits_3(opseal):
    """Enrolling against a server that does not answer exits 3 and names the server."""
    assert opseal.sync("fp", "org", "keygen").code == 0
    url = f"http://127.0.0.1:{free_port()}"
    run = opseal.sync("fp", "enrol", "--server", url, "--code", "x", "--org", "o", "--user", "u",
                      "--device", "d")  # fmt: skip
    assert run.code == 3
    assert f"opseal: cannot reach the server at {url}" in run.err
    assert "Traceback" not in run.err


def test_wrong_passphrase_exits_2_without_a_traceback(opseal, monkeypatch):
    """A passphrase that does not open the profile's keys is reported plainly (exit 2)."""
    assert opseal.sync("fp", "org", "keygen").code == 0
    monkeypatch.setenv("OPSEAL_PASSPHRASE", "not the passphrase")
    run = opseal.sync("fp", "enrol", "--server", "http://127.0.0.1:1", "--code", "x",
                      "--org", "o", "--user", "u", "--device", "d")  # fmt: skip
    assert run.code == 2
    assert run.err == (
        "opseal: the passphrase does not open profile 'fp'; "
        "check --passphrase-file or OPSEAL_PASSPHRASE (or retype it)\n"
    )


def test_passphrase_file_is_read_and_keygen_refuses_to_overwrite(opseal, monkeypatch, tmp_path):
    """--passphrase-file supplies the passphrase; a second keygen keeps the first root key."""
    monkeypatch.delenv("OPSEAL_PASSPHRASE")
    secret = tmp_path / "pass"
    secret.write_text("a passphrase from a file\n")
    first = opseal.sync("fp", "--passphrase-file", str(secret), "--json", "org", "keygen")
    assert first.code == 0
    root = Profile("fp", opseal.home).load_root("a passphrase from a file")
    assert root.verify_key.fingerprint == first.json["fingerprint"]
    again = opseal.sync("fp", "--passphrase-file", str(secret), "org", "keygen")
    assert again.code == 2
    assert "already holds an organisation root key" in again.err
    none = opseal.sync("other", "org", "keygen")  # no file, no variable, no terminal
    assert none.code == 2
    assert "OPSEAL_PASSPHRASE" in none.err


def test_a_root_key_starting_with_a_dash_is_taken_as_the_value(opseal):
    """Base64url keys may begin with "-"; `--root-key -...` still reads it as the key."""
    key = next(k for k in iter(lambda: b64e(SigningKey.generate().verify_key.raw), None)
               if k.startswith("-"))  # fmt: skip
    run = opseal.sync("nobody", "op", "join", OP, "--root-key", key)
    assert run.code == 2
    assert "run `opseal enrol` first" in run.err  # got past parsing, to the missing profile


async def test_enrolment_by_request_revocation_and_removal_through_the_cli(
    opseal, server, tmp_path
):
    """A user's device enrols by request (the focal point certifies after the fingerprint is
    read out, a wrong one is refused), is admitted, removed, kept out until `--readmit`,
    then revoked by the focal point and removed at the next `admit`."""
    wco_root = (await onboard(opseal, server, "wco", "wco", coordinator=True))["root_key"]
    await onboard(opseal, server, "fr-customs", "fr")
    created = await opseal("wco", "--json", "op", "create", "--id", OP, "--code", "STOP V",
                           "--name", "Operation STOP V", "--start", "2025-05-12",
                           "--end", "2099-05-30", "--member", "fr-customs:customs")  # fmt: skip
    assert created.code == 0, created.err
    wco_info = await asyncio.to_thread(Profile("wco", opseal.home).info)
    log_fp = VerifyKey(b64d(wco_info.log_key)).fingerprint
    request_file, answer = tmp_path / "request.txt", tmp_path / "answer.txt"

    asked = await opseal("phone", "--json", "enrol", "request", "--server", server.url,
                         "--org", "fr-customs", "--user", "fr-officer", "--device", "fr-phone",
                         "--out", str(request_file))  # fmt: skip
    assert asked.code == 0, asked.err
    wrong = await opseal("fr", "org", "certify", str(request_file), "--out", str(answer),
                         "--fingerprint", "11111 11111 11111 11111 11111 11111")  # fmt: skip
    assert wrong.code == 1
    assert "does not match" in wrong.err
    certified = await opseal("fr", "org", "certify", str(request_file), "--out", str(answer),
                             "--fingerprint", asked.json["fingerprint"])  # fmt: skip
    assert certified.code == 0, certified.err
    done = await opseal("phone", "--json", "enrol", "complete", str(answer), "--log-key", log_fp)
    assert done.code == 0, done.err
    assert done.json["device_id"] == "fr-phone"

    assert (await opseal("phone", "op", "join", OP, "--root-key", wco_root)).code == 0
    assert "fr-phone" in (await opseal("wco", "--json", "admit")).json["admitted"]
    removed = await opseal("wco", "--json", "remove", "--op", OP, "--device", "fr-phone")
    assert removed.json["removed"] == ["fr-phone"]
    # a fresh key package (a new init key), not the used one
    assert (await opseal("phone", "op", "join", OP, "--root-key", wco_root)).code == 0
    assert (await opseal("wco", "--json", "admit")).json["admitted"] == []
    readmitted = await opseal("wco", "--json", "admit", "--readmit", "fr-phone")
    assert readmitted.json["admitted"] == ["fr-phone"]
    rotated = await opseal("wco", "--json", "rotate", "--op", OP, "--area", "seizures")
    assert rotated.json["rotated"] == ["seizures"], rotated.err

    revoked = await opseal("fr", "--json", "device", "revoke", "fr-phone", "--reason", "lost")
    assert revoked.code == 0, revoked.err
    assert (await opseal("wco", "--json", "admit")).code == 0
    async with await Client.open(Profile("wco", opseal.home), PASSPHRASE, login=False) as wco:
        latest = wco.store.latest_state(OP, "seizures")
        assert latest is not None
        assert "fr-phone" not in {e.device_id for e in GroupState.from_bytes(latest[1]).roster}
    assert (await opseal("phone", "whoami")).code == 1  # revoked: it cannot log in
