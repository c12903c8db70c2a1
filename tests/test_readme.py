"""The README's walkthroughs, replayed as written against a real server.

Each fenced ``sh`` block after a ``<!-- replay: NAME -->`` comment is split into commands
(``\\`` continuations joined, comments dropped), its placeholders are filled in from what the
earlier commands printed, and every command runs as a subprocess — ``opseal-server`` on the
test's SQLite database, ``opseal`` with a test home and passphrase — and must exit 0. So a
renamed option, a new required argument or a changed output that a later step relies on fails
here rather than in front of a new administration.

A block runs as its role's profile (``ROLES``: the reader's ``OPSEAL_PROFILE``; an ``export``
in a block sets it for that role's later blocks); ``cmd &`` runs in the background until the
replay ends, ``opseal tail`` until it has started following and is then stopped with Ctrl-C
(SIGINT, exit 0). The paths a reader has on their own machine (``PATHS``, ``~``) are files of
the test's folder. What the walkthrough does not show — the other members' organisations and
devices — is set up in-process, and the test waits for ``admit --watch`` to admit a device
before that device's "once admitted" block, as its reader would.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from opseal.client._demo_data import seizure_records
from opseal.client.client import Client
from opseal.client.profile import Profile
from opseal.client.seizures import write_seizures_csv
from opseal.crypto.keys import KdfParams, SigningKey
from opseal.server import cli as server_cli
from opseal.server.services import instance as admin
from opseal.server.services.onboarding import organisations

from .server.procs import SERVER, ServerProcess, admin_context, prepare_database

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_URL = "https://opseal.example.org"
# the CLI with cheap key files: Argon2id at its default cost would dominate the replay
OPSEAL = [sys.executable, "-c",
          "import sys; from opseal.client import cli; from opseal.crypto.keys import KdfParams; "
          "cli.KDF_PARAMS = KdfParams(time_cost=1, memory_kib=1024, parallelism=1); "
          "sys.exit(cli.main(sys.argv[1:]))"]  # fmt: skip
FAST = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)
PASSPHRASE = "correct horse battery staple"
ROLES = {"coordinator": "wco", "officer": "anna", "stakeholder": "brandx-1", "auditor": "anna"}
"""The profile each role's blocks run as (the national system's block exports its own)."""
PATHS = {"/etc/opseal/ncen.pass": "ncen.pass",
         "/var/export/seizures-2025-05-13.csv": "seizures.csv"}  # fmt: skip
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def replay_blocks(text: str) -> dict[str, list[list[str]]]:
    """The commands of every marked block, by the marker's name, each split as a shell would."""
    blocks: dict[str, list[list[str]]] = {}
    pattern = r"<!-- replay: ([\w-]+) -->\n```sh\n(.*?)```"
    for name, body in re.findall(pattern, text, flags=re.DOTALL):
        joined = body.replace("\\\n", " ")
        commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
        blocks.setdefault(name, []).extend(c for c in commands if c)
    return blocks


class Replay:
    """Runs README commands in one folder, remembering what they printed for placeholders."""

    def __init__(self, tmp: Path, server: ServerProcess) -> None:
        self.tmp, self.server = tmp, server
        self.env = {**os.environ, "OPSEAL_HOME": str(tmp / "home"),
                    "OPSEAL_PASSPHRASE": PASSPHRASE,
                    "OPSEAL_DATABASE_URL": server.database_url}  # fmt: skip
        self.env.pop("OPSEAL_PROFILE", None)
        self.roles: dict[str, dict[str, str]] = {}  # what each role's blocks exported
        self.values: dict[str, str] = {}
        self.ran: list[str] = []
        self.background: list[Background] = []

    def fill(self, argv: list[str]) -> list[str]:
        filled = []
        for word in argv:
            word = word.replace(EXAMPLE_URL, self.server.url)
            word = PATHS.get(word, word)
            if word.startswith("~/"):
                word = str(self.tmp / "user" / word[2:])
            for placeholder in re.findall(r"<[^>]+>", word):
                assert placeholder in self.values, f"no value for {placeholder} in {argv}"
                word = word.replace(placeholder, self.values[placeholder])
            filled.append(word)
        return filled

    async def run(self, argv: list[str], env: dict[str, str] | None = None) -> str:
        filled = self.fill(argv)
        exe = {"opseal": OPSEAL, "opseal-server": [str(SERVER)]}[filled[0]]
        done = await asyncio.to_thread(
            subprocess.run, [*exe, *filled[1:]], cwd=self.tmp, env=env or self.env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}: {done.stderr}"
        self.ran.append(shlex.join(argv))
        return done.stdout

    async def block(
        self,
        name: str,
        commands: list[list[str]],
        after: Callable[[list[str], str], None] | None = None,
    ) -> list[str]:
        """One README block as its role types it; what each command printed (``after`` sees
        each, to fill the placeholders of the next)."""
        role = name.split("-")[0]
        exported = self.roles.setdefault(role, {})
        if role in ROLES:
            exported.setdefault("OPSEAL_PROFILE", ROLES[role])
        outs = []
        for argv in commands:
            env = {**self.env, **exported}
            if argv[0] == "export":
                exported.update(word.split("=", 1) for word in argv[1:])
            elif argv[-1] == "&":
                self.background.append(Background(self, argv[:-1], env))
            elif argv[1:] == ["tail"]:
                tail = Background(self, argv, env)
                await tail.wait_for("Following")
                assert await tail.interrupt() == 0, tail.err
            else:
                outs.append(await self.run(argv, env))
                if after is not None:
                    after(argv, outs[-1])
        return outs

    async def stop(self) -> None:
        for job in self.background:
            assert await job.interrupt() == 0, job.err


class Background:
    """A command left running (``&``, or ``tail`` until Ctrl-C), its output collected."""

    def __init__(self, replay: Replay, argv: list[str], env: dict[str, str]) -> None:
        filled = replay.fill(argv)
        self.proc = subprocess.Popen(
            [*OPSEAL, *filled[1:]], cwd=replay.tmp, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.out = self.err = ""
        self.seen = threading.Condition()
        self.readers = [
            threading.Thread(target=self._collect, args=(pipe, attr), daemon=True)
            for pipe, attr in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))
        ]
        for reader in self.readers:
            reader.start()
        replay.ran.append(shlex.join(argv))

    def _collect(self, pipe, attr: str) -> None:
        with pipe:
            for line in pipe:
                with self.seen:
                    setattr(self, attr, getattr(self, attr) + line)
                    self.seen.notify_all()

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        def wait() -> bool:
            with self.seen:
                return self.seen.wait_for(lambda: text in self.out + self.err, timeout)

        assert await asyncio.to_thread(wait), f"no {text!r}: {self.out}{self.err}"

    async def interrupt(self) -> int:
        """Ctrl-C; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(self.proc.wait, 15)
        for reader in self.readers:
            await asyncio.to_thread(reader.join, 5)
        return code


async def test_the_readme_walkthroughs_run_as_written(tmp_path, capsys):
    """Every marked README block runs as written against one server: onboarding an
    administration (at most six commands and three hand-offs, every device enrolled in its
    organisation, `list-orgs` showing it, an unknown `--kind` refused naming the kinds), then
    the coordinator's, the officer's, the national system's, the stakeholder's and the
    auditor's walkthroughs of one operation, each exiting 0."""
    text = README.read_text()
    blocks = replay_blocks(text)
    onboarding = blocks["onboarding"]
    section = text[text.index("<!-- replay: onboarding -->") :].split("```")[1]
    assert len(onboarding) <= 6
    assert section.count("hand-off ") <= 3
    url = f"sqlite+aiosqlite:///{tmp_path / 'opseal.db'}"
    await prepare_database(url)
    async with admin_context(url) as ctx, ServerProcess(url) as server:
        replay = Replay(tmp_path, server)
        for argv in onboarding:
            out = await replay.run(argv)
            if argv[:2] == ["opseal-server", "create-org"]:
                replay.values["<code>"] = out.split()[-1]
            if argv[-1].endswith(".request"):
                fingerprint = re.search(r"request fingerprint: ([\d ]+)", out)
                assert fingerprint, out
                replay.values["<digits Anna reads>"] = fingerprint.group(1).strip()
        listed = await replay.run(["opseal-server", "list-orgs"])
        [org] = await organisations(ctx)
        assert (org["org_id"], org["kind"], org["enrolled"]) == (
            "fr-customs",
            "customs-administration",
            True,
        )
        assert org["fingerprint"] in listed
        try:
            await _operation(replay, blocks, ctx)
        finally:
            await replay.stop()
    with pytest.raises(SystemExit) as refused:
        server_cli.main(["create-org", "x", "--name", "X", "--kind", "customs"])
    err = capsys.readouterr().err
    assert refused.value.code == 2
    assert "'customs' is not a known kind; use one of customs-administration, secretariat" in err
    for profile, kind in (("fr-focal", "person"), ("anna", "person"), ("ncen", "service")):
        info = json.loads((tmp_path / "home" / profile / "profile.json").read_text())
        assert (info["org_id"], info["user_kind"]) == ("fr-customs", kind)
    assert {name for name in blocks if name != "onboarding"} == PLAYED


PLAYED = {"coordinator-create", "coordinator", "coordinator-release", "officer-join", "officer",
          "national-join", "national", "stakeholder-join", "stakeholder", "auditor"}  # fmt: skip
"""Every marked block the operation's walkthrough plays (a new marker must be played too)."""
OTHERS = {  # the members the walkthrough names, beyond the onboarded French Customs
    "wco": ("World Customs Organization", "secretariat", "wco"),
    "de-customs": ("German Customs", "customs-administration", "de-phone-2"),
    "interpol": ("INTERPOL", "international-organisation", "interpol-1"),
    "brandx": ("Brand X", "rights-holder", "brandx-1"),
}


async def _operation(replay: Replay, blocks: dict[str, list[list[str]]], ctx) -> None:
    """The coordinator's and the members' walkthroughs of 'STOP V', in an operation's order."""
    tmp, home = replay.tmp, replay.tmp / "home"
    roots: dict[str, SigningKey] = {}
    for org, (name, kind, device) in OTHERS.items():
        roots[org] = SigningKey.generate()
        await admin.create_organisation(ctx, org, name, kind, can_coordinate=org == "wco")
        client = await Client.enrol(
            Profile(device, home), server=replay.server.url,
            code=await admin.create_enrolment_code(ctx, org), passphrase=PASSPHRASE,
            root=roots[org], org_id=org, user_id=device, device_id=device, params=FAST,
        )  # fmt: skip
        await client.close()
    # what the readers have on their machines
    (tmp / "OperationalPlan.pdf").write_bytes(b"%PDF-1.4\n% Operational Plan\n%%EOF\n")
    (tmp / "ncen.pass").write_text(PASSPHRASE + "\n")
    (tmp / "user" / "Documents").mkdir(parents=True)
    records = seizure_records("FR", 3, datetime.date(2025, 5, 13))
    await asyncio.to_thread(write_seizures_csv, tmp / "seizures.csv", records)

    await replay.block("coordinator-create", blocks["coordinator-create"])
    de = await Client.open(Profile("de-phone-2", home), PASSPHRASE)  # a German device joins
    try:
        await de.join("op-stop-v", roots["wco"].verify_key.key_id)
    finally:
        await de.close()
    for name in ("officer-join", "national-join", "stakeholder-join"):
        await replay.block(name, blocks[name])

    coordinator = blocks["coordinator"]
    assert coordinator[0][-1] == "&"  # the watch first, and the others wait for it
    await replay.block("coordinator", coordinator[:1])
    watch = replay.background[-1]
    for device in ("de-phone-2", "anna-laptop", "ncen-1", "brandx-1"):
        await watch.wait_for(f"admitted {device}")

    def ids(argv: list[str], out: str) -> None:
        placeholder = {"attach": "<message-id>", "alert": "<alert-id>"}.get(argv[1])
        if placeholder:
            replay.values[placeholder] = re.search(UUID, out).group()

    await replay.block("coordinator", coordinator[1:], ids)

    await replay.block("officer", blocks["officer"])
    assert (tmp / "user" / "Documents" / "OperationalPlan.pdf").exists()
    [submitted] = await replay.block("national", blocks["national"])
    result = json.loads(submitted)
    assert (result["records"], result["new"], result["refused"]) == (3, 3, [])
    replay.values["<message-id>"] = result["message_ids"][0]  # the record to release
    await replay.block("coordinator-release", blocks["coordinator-release"])
    read, _, report = await replay.block("stakeholder", blocks["stakeholder"])
    assert "release: record FR-0001" in read, read  # the sanitised copy reached Brand X
    assert re.search(r"^FR +1 +1 ", report, flags=re.MULTILINE), report  # and its report counts it
    verified, _, log = await replay.block("auditor", blocks["auditor"])
    assert verified.startswith("Audit log verified"), verified
    assert "device=anna-laptop" in log, log
