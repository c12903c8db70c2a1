"""The README's walkthroughs, replayed as written against a real server.

Each fenced ``sh`` block after a ``<!-- replay: NAME -->`` comment is split into commands
(``\\`` continuations joined, comments dropped), its placeholders are filled in from what the
earlier commands printed, and every command runs as a subprocess — ``opseal-server`` on the
test's SQLite database, ``opseal`` with a test home and passphrase — and must exit 0. So a
renamed option, a new required argument or a changed output that a later step relies on fails
here rather than in front of a new administration.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from opseal.server import cli as server_cli
from opseal.server.services.onboarding import organisations

from .server.procs import SERVER, ServerProcess, admin_context, prepare_database

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_URL = "https://opseal.example.org"
# the CLI with cheap key files: Argon2id at its default cost would dominate the replay
OPSEAL = [sys.executable, "-c",
          "import sys; from opseal.client import cli; from opseal.crypto.keys import KdfParams; "
          "cli.KDF_PARAMS = KdfParams(time_cost=1, memory_kib=1024, parallelism=1); "
          "sys.exit(cli.main(sys.argv[1:]))"]  # fmt: skip


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
                    "OPSEAL_PASSPHRASE": "correct horse battery staple",
                    "OPSEAL_DATABASE_URL": server.database_url}  # fmt: skip
        self.env.pop("OPSEAL_PROFILE", None)
        self.values: dict[str, str] = {}
        self.ran: list[str] = []

    def fill(self, argv: list[str]) -> list[str]:
        filled = []
        for word in argv:
            word = word.replace(EXAMPLE_URL, self.server.url)
            for placeholder in re.findall(r"<[^>]+>", word):
                assert placeholder in self.values, f"no value for {placeholder} in {argv}"
                word = word.replace(placeholder, self.values[placeholder])
            filled.append(word)
        return filled

    async def run(self, argv: list[str]) -> str:
        filled = self.fill(argv)
        exe = {"opseal": OPSEAL, "opseal-server": [str(SERVER)]}[filled[0]]
        done = await asyncio.to_thread(
            subprocess.run, [*exe, *filled[1:]], cwd=self.tmp, env=self.env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}: {done.stderr}"
        self.ran.append(shlex.join(argv))
        return done.stdout


async def test_the_readme_walkthroughs_run_as_written(tmp_path, capsys):
    """Onboarding an administration runs exactly as the README writes it, in at most six
    commands and three hand-offs, and leaves every device enrolled in its organisation;
    `opseal-server list-orgs` shows it, and an unknown `--kind` is refused naming the kinds."""
    text = README.read_text()
    blocks = replay_blocks(text)
    onboarding = blocks["onboarding"]
    section = text[text.index("<!-- replay: onboarding -->") :].split("```")[1]
    assert len(onboarding) <= 6
    assert section.count("hand-off ") <= 3
    url = f"sqlite+aiosqlite:///{tmp_path / 'opseal.db'}"
    await prepare_database(url)
    async with ServerProcess(url) as server:
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
    async with admin_context(url) as ctx:
        [org] = await organisations(ctx)
    assert (org["org_id"], org["kind"], org["enrolled"]) == (
        "fr-customs",
        "customs-administration",
        True,
    )
    assert org["fingerprint"] in listed
    with pytest.raises(SystemExit) as refused:
        server_cli.main(["create-org", "x", "--name", "X", "--kind", "customs"])
    err = capsys.readouterr().err
    assert refused.value.code == 2
    assert "'customs' is not a known kind; use one of customs-administration, secretariat" in err
    for profile, kind in (("fr-focal", "person"), ("anna", "person"), ("ncen", "service")):
        info = json.loads((tmp_path / "home" / profile / "profile.json").read_text())
        assert (info["org_id"], info["user_kind"]) == ("fr-customs", kind)
