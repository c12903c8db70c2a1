"""``make demo``: Operation STOP V played end to end on a real server, with the public client API.

The instance admin starts ``opseal-server`` on SQLite under ``./var/demo`` (wiped first; it
must be a folder this demo created, or empty) and registers six organisations with the
server's own CLI. Their focal points enrol; the WCO publishes the charter; three customs
administrations, INTERPOL, a rights holder and a German national system (a service account)
join and are admitted. Then:

1. the coordinator broadcasts the Operational Plan (a PDF) in ``plan``, acknowledgement required;
2. France and Germany acknowledge, Spain only reads; the coordinator sees who has not;
3. the German national system uploads 200 seizure records from a CSV file, and a re-run
   duplicates nothing;
4. a French officer posts a seizure with a photo, which the coordinator opens;
5. France alerts Spain about a consignment, Spain answers;
6. the rights holder reads the stakeholder briefing and is refused the customs areas;
7. the audit log verifies.

It prints what each participant sees, then keeps the server running and prints how to use
the ``opseal`` CLI against it; ``--no-serve`` stops instead. Exit codes: 0 every outcome held,
1 one did not, 2 the demo could not run (folder, port or server trouble).

Long because: it is one scripted scenario read top to bottom (setup, each act, the summary);
split into modules it would have to be read in several places at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import KdfParams, SigningKey

from . import content
from ._demo_data import operational_plan_pdf, parcel_png, seizure_records
from .attachments import Attachment
from .client import Client
from .errors import ClientError, ForbiddenError
from .profile import Profile
from .seizures import read_seizures_csv, write_seizures_csv

__all__ = ["OUTCOMES", "DemoError", "DemoResult", "main", "run"]

OPERATION = "op-stop-v"
PASSPHRASE = "opseal-demo-passphrase"  # noqa: S105 - printed for the reader; demo keys only
DEMO_KDF = KdfParams(time_cost=2, memory_kib=19 * 1024)
"""Argon2id at OWASP's minimum, so the demo starts quickly; real profiles use the default."""
MARKER = ".opseal-demo"
_ADMIN_BATCH = """
import contextlib, io, json, sys
from opseal.server.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    results.append([code, out.getvalue()])
    if code:
        break
sys.stdout.write(json.dumps(results))
"""
Out = Callable[[str], object]

ORGS = {
    "wco": ("World Customs Organization", "secretariat", "coordinator"),
    "fr-customs": ("French Customs", "customs-administration", "customs"),
    "de-customs": ("German Customs", "customs-administration", "customs"),
    "es-customs": ("Spanish Customs", "customs-administration", "customs"),
    "interpol": ("INTERPOL", "international-organisation", "partner"),
    "brandx": ("Brand X Rights Protection", "rights-holder", "stakeholder"),
}
REPORTING = {"fr-customs": ("FR",), "de-customs": ("DE",), "es-customs": ("ES",)}
"""The countries each administration reports seizures for (charter reporting codes)."""
AREAS = (
    AreaPolicy("plan", frozenset({"coordinator", "customs"}), frozenset({"coordinator"})),
    AreaPolicy(
        "seizures",
        frozenset({"coordinator", "customs", "partner"}),
        frozenset({"coordinator", "customs"}),
    ),
    AreaPolicy(
        "alerts",
        frozenset({"coordinator", "customs", "partner"}),
        frozenset({"coordinator", "customs"}),
    ),
    AreaPolicy(
        "stakeholders",
        frozenset({"coordinator", "customs", "partner", "stakeholder"}),
        frozenset({"coordinator", "stakeholder"}),
    ),
)
OUTCOMES = (
    "plan-broadcast",
    "plan-acknowledged",
    "national-system-200-records",
    "resubmission-no-duplicates",
    "seizure-with-photo",
    "alert-answered",
    "stakeholder-reads-briefing",
    "stakeholder-refused-customs-areas",
    "audit-verifies",
    "no-integrity-warnings",
)


@dataclass(frozen=True)
class Participant:
    """One enrolled device: its profile (also its device id), organisation and user."""

    profile: str
    org: str
    user: str
    kind: str = "person"

    @property
    def role(self) -> str:
        return ORGS[self.org][2]


PARTICIPANTS = (
    Participant("wco-ocu", "wco", "ocu-lead"),
    Participant("fr-officer", "fr-customs", "fr-officer"),
    Participant("de-officer", "de-customs", "de-officer"),
    Participant("es-officer", "es-customs", "es-officer"),
    Participant("interpol-analyst", "interpol", "interpol-analyst"),
    Participant("brandx-analyst", "brandx", "brandx-analyst"),
    Participant("de-ncen", "de-customs", "de-ncen", kind="service"),
)


class DemoError(Exception):
    """The demo could not run: its folder, port or server."""


@dataclass
class DemoResult:
    """Each outcome (name -> held?, what was seen), the server URL and the profiles' home."""

    outcomes: dict[str, tuple[bool, str]] = field(default_factory=dict)
    server_url: str = ""
    home: Path = Path()
    plan_id: str = ""

    @property
    def ok(self) -> bool:
        return set(OUTCOMES) <= set(self.outcomes) and all(ok for ok, _ in self.outcomes.values())

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


# -- the server, run by the instance admin ---------------------------------------------
class DemoServer:
    """``opseal-server`` as subprocesses: admin commands, then ``serve`` in the background."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.config = root / "server.toml"
        self.log = root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def command() -> list[str]:
        exe = Path(sys.executable).parent / "opseal-server"
        return [str(exe)] if exe.exists() else [sys.executable, "-m", "opseal.server.cli"]

    @staticmethod
    def _env() -> dict[str, str]:
        """The environment without OPSEAL_* settings, which would override the config file."""
        return {k: v for k, v in os.environ.items() if not k.startswith("OPSEAL_")}

    def write_config(self) -> None:
        self.config.write_text(
            f'database_url = "sqlite+aiosqlite:///{self.root / "opseal.db"}"\n'
            f'host = "127.0.0.1"\nport = {self.port}\nlog_level = "warning"\n'
            "rate_limit_per_minute = 100000\n"
        )

    def admin(self, *commands: list[str]) -> list[str]:
        """Run ``opseal-server`` admin commands, in order, through the server CLI's own
        ``main`` in one helper process (one interpreter start rather than one per command);
        returns what each printed, or raises :class:`DemoError` at the first failure."""
        argvs = [["--config", str(self.config), *argv] for argv in commands]
        done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-c", _ADMIN_BATCH, json.dumps(argvs)],
            capture_output=True,
            env=self._env(),
            check=False,
        )
        results = json.loads(done.stdout or "[]")
        for argv, (code, _) in zip(commands, results, strict=False):
            if code:
                detail = done.stderr.decode().strip()
                raise DemoError(f"opseal-server {' '.join(argv)} failed: {detail}")
        if done.returncode or len(results) != len(commands):
            raise DemoError(f"opseal-server admin commands failed: {done.stderr.decode().strip()}")
        return [output.strip() for _, output in results]

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own executable and arguments
                [*self.command(), "--config", str(self.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the server did not start on {self.url}: see {self.log}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except OSError:
            return False

    def wait(self) -> None:
        if self._proc is not None:
            self._proc.wait()

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _fresh_dir(root: Path) -> None:
    """Wipe the demo folder, refusing one this demo did not create (unless it is empty)."""
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise DemoError(f"{root} is not empty and was not made by the demo: choose another --dir")
    shutil.rmtree(root, ignore_errors=True)
    (root / "files").mkdir(parents=True)
    (root / MARKER).write_text("made by python -m opseal.client.demo; wiped on every run\n")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(requested: int | None) -> int:
    """``requested`` (0: any free port), else 8443 when free, else any free port."""
    if requested is None and _free(8443):
        return 8443
    if requested:
        return requested
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _administer(server: DemoServer, out: Out) -> dict[str, str]:
    """The instance admin's part: schema, keys, organisations, one enrolment code each."""
    server.write_config()
    orgs = [
        ["create-org", org, "--name", name, "--kind", kind]
        + (["--coordinator"] if role == "coordinator" else [])
        for org, (name, kind, role) in ORGS.items()
    ]
    enrol_codes = [["enrol-code", p.org] for p in PARTICIPANTS]
    printed = server.admin(["migrate"], ["init"], *orgs, *enrol_codes)
    codes = printed[-len(PARTICIPANTS) :]
    out(
        f"1. Instance admin: opseal-server --config {_rel(server.config)} migrate, init, "
        f"create-org x{len(ORGS)} (WCO may coordinate), enrol-code x{len(PARTICIPANTS)}"
    )
    return {p.profile: code for p, code in zip(PARTICIPANTS, codes, strict=True)}


def _officer_record(photo: Attachment) -> dict[str, Any]:
    """The seizure a French officer reports by hand, with the parcel's photo."""
    return {
        "record_id": "FR-0042",
        "case_ref": "FR-C-0042",
        "reporting_country": "FR",
        "seizure_date": datetime.date.today().isoformat(),
        "transport_mode": "express",
        "ecommerce": True,
        "attachments": [photo.to_json()],
        "goods": [
            {
                "category": "medicines",
                "description": "falsified weight-loss pills",
                "quantity_items": 2400,
                "weight_kg": 1.2,
            }
        ],
    }


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


# -- the scenario ----------------------------------------------------------------------
class Scenario:
    """Plays the operation through the client library and keeps score of the outcomes."""

    def __init__(self, url: str, root: Path, out: Out) -> None:
        self.url, self.root, self.out = url, root, out
        self.home, self.files = root / "profiles", root / "files"
        self.result = DemoResult(server_url=url, home=self.home)
        self.clients: dict[str, Client] = {}
        self.roots: dict[str, SigningKey] = {}
        self.ids: dict[str, Any] = {}

    def __getitem__(self, profile: str) -> Client:
        return self.clients[profile]

    def check(self, name: str, ok: bool, seen: str) -> None:
        self.result.outcomes[name] = (ok, seen)

    async def play(self, codes: dict[str, str]) -> DemoResult:
        try:
            await self.onboard(codes)
            for step in (
                self.broadcast_plan,
                self.acknowledge_plan,
                self.national_system,
                self.officer_seizure,
                self.alert_and_response,
                self.stakeholder,
                self.audit,
            ):
                await self._guarded(step)
            await self.views()
        finally:
            for client in self.clients.values():
                await client.close()
        return self.result

    async def _guarded(self, step: Callable[[], Any]) -> None:
        """A step that fails is reported and scored; the next steps still run."""
        try:
            await step()
        except (ClientError, CryptoError, OSError, KeyError, ValueError) as exc:
            self.out(f"   !! {step.__name__} failed: {type(exc).__name__}: {exc}")
            self.check(step.__name__, False, str(exc))

    # -- onboarding --------------------------------------------------------------------
    async def onboard(self, codes: dict[str, str]) -> None:
        for p in PARTICIPANTS:
            await self._enrol(p, codes[p.profile])
        wco = self["wco-ocu"]
        now = wco.now()
        members = [
            Member(o, n, k, r, self.roots[o].verify_key, REPORTING.get(o, ()))
            for o, (n, k, r) in ORGS.items()
        ]
        draft = Charter.create(
            operation_id=OPERATION,
            code="STOP V",
            name="Operation STOP V",
            starts_at=now - 7 * 86400,
            ends_at=now + 21 * 86400,
            members=members,
            areas=AREAS,
            issued_at=now - 5,
        )
        user_key, _ = wco.profile.load_user(PASSPHRASE)
        await wco.create_operation(draft, user_key)
        pin = self.roots["wco"].verify_key
        for p in PARTICIPANTS[1:]:
            await self[p.profile].join(OPERATION, pin.key_id)
        admitted = await wco.admit()
        self.out(
            f"2. {len(PARTICIPANTS)} devices enrolled by their focal points; WCO published the "
            f"charter of {OPERATION}; members pinned WCO's root ({pin.fingerprint[:17]}...) and "
            f"joined; WCO admitted {len(set(admitted))} devices"
        )

    async def _enrol(self, p: Participant, code: str) -> None:
        focal_point = p.org not in self.roots
        root = self.roots.setdefault(p.org, SigningKey.generate())
        profile = Profile(p.profile, self.home)
        self.clients[p.profile] = await Client.enrol(
            profile,
            server=self.url,
            code=code,
            passphrase=PASSPHRASE,
            root=root,
            org_id=p.org,
            user_id=p.user,
            device_id=p.profile,
            user_kind=p.kind,
            name=p.user,
            params=DEMO_KDF,
        )
        if focal_point:
            profile.save_root(root, PASSPHRASE, DEMO_KDF)

    # -- 1-2: the Operational Plan ------------------------------------------------------
    async def broadcast_plan(self) -> None:
        pdf = self.files / "operational-plan.pdf"
        pdf.write_bytes(operational_plan_pdf())
        wco = self["wco-ocu"]
        plan = await wco.upload(OPERATION, "plan", pdf, media_type="application/pdf")
        title = "Operation STOP V - Operational Plan"
        self.ids["plan"] = self.result.plan_id = await wco.post(
            OPERATION,
            "plan",
            "document",
            content.document(title, [plan]),
            handling="H2",
            requires_ack=True,
        )
        self.ids["plan-attachment"] = plan
        self.out(
            f"3. wco-ocu broadcasts '{title}' ({pdf.name}, {pdf.stat().st_size} bytes) "
            "in plan, handling H2, acknowledgement required"
        )
        await wco.sync()
        stored = wco.store.message(self.ids["plan"])
        ok = stored is not None and stored.requires_ack and stored.handling == "H2"
        self.check("plan-broadcast", ok, f"message {self.ids['plan']}")

    async def _open_plan(self, profile: str) -> bool:
        """Sync, find the plan, download and decrypt its PDF; True if it is the original."""
        client = self[profile]
        await client.sync()
        message = client.store.message(self.ids["plan"])
        if message is None:
            return False
        [pdf] = content.attachments_of(message.json())
        dest = self.files / f"{profile}-{pdf.meta.file_name}"
        await client.download(pdf.meta, pdf.blob_id, dest)
        return dest.read_bytes() == (self.files / "operational-plan.pdf").read_bytes()

    async def acknowledge_plan(self) -> None:
        intact = []
        for profile in ("fr-officer", "de-officer", "es-officer"):
            intact.append(await self._open_plan(profile))
            kind = "read" if profile == "es-officer" else "ack"
            await self[profile].ack(self.ids["plan"], kind)
            done = "acknowledged" if kind == "ack" else "read it, not acknowledged"
            self.out(f"   {profile:<16} opened the plan PDF (hash verified): {done}")
        await self["wco-ocu"].sync()
        status = await self["wco-ocu"].acks(self.ids["plan"])
        acked = sorted(o["org_id"] for o in status["organisations"] if o["acked"])
        pending = status["pending_ack_orgs"]
        self.out(
            f"   {'wco-ocu':<16} sees acknowledged: {', '.join(acked)}; "
            f"still to acknowledge: {', '.join(pending) or 'nobody'}"
        )
        ok = (
            all(intact) and {"fr-customs", "de-customs"} <= set(acked) and pending == ["es-customs"]
        )
        self.check("plan-acknowledged", ok, f"acked {acked}, pending {pending}")

    # -- 3: the national system ---------------------------------------------------------
    def _seizures_from(self, sender: str) -> list[Any]:
        messages = self["wco-ocu"].read(OPERATION, "seizures", content_type="seizure")
        return [m for m in messages if m.sender == sender]

    async def national_system(self) -> None:
        path = self.files / "seizures-de.csv"
        rows = write_seizures_csv(path, seizure_records("DE", 200, datetime.date.today()))
        records, errors = read_seizures_csv(path)
        ncen, wco = self["de-ncen"], self["wco-ocu"]
        await ncen.sync()
        started = time.perf_counter()
        ids = await ncen.post_seizures(OPERATION, records)
        took = time.perf_counter() - started
        await wco.sync()
        received = self._seizures_from("de-ncen")
        self.out(
            f"4. de-ncen (German national system, service account) submits {len(records)} "
            f"records ({rows} CSV rows, {len(errors)} rejected) from {_rel(path)} "
            f"in {took:.2f} s; wco-ocu receives {len(received)}"
        )
        ok = len(received) == 200 and {m.message_id for m in received} == set(ids)
        self.check("national-system-200-records", ok, f"{len(received)} records received")
        await ncen.post_seizures(OPERATION, read_seizures_csv(path)[0])
        await wco.sync()
        again = len(self._seizures_from("de-ncen"))
        self.out(f"   re-running the same upload duplicates nothing: wco-ocu still has {again}")
        self.check("resubmission-no-duplicates", again == 200, f"{again} after the re-run")

    # -- 4: a seizure with a photo ------------------------------------------------------
    async def officer_seizure(self) -> None:
        photo = self.files / "parcel-FR-0042.png"
        photo.write_bytes(parcel_png())
        fr, wco = self["fr-officer"], self["wco-ocu"]
        await fr.sync()
        attachment = await fr.upload(OPERATION, "seizures", photo)
        [message_id] = await fr.post_seizures(OPERATION, [_officer_record(attachment)])
        await wco.sync()
        seen = wco.store.message(message_id)
        [ref] = content.attachments_of(seen.json()) if seen else [attachment]
        copy = await wco.download(ref.meta, ref.blob_id, self.files / "wco-ocu-parcel.png")
        same = seen is not None and copy.read_bytes() == photo.read_bytes()
        verdict = "verified" if same else "NOT intact"
        self.out(
            f"5. fr-officer posts seizure FR-0042 (2,400 falsified pills) with photo "
            f"{photo.name}; wco-ocu opens the photo: {verdict}"
        )
        self.check("seizure-with-photo", same, f"message {message_id}")

    # -- 5: an alert and its response ---------------------------------------------------
    async def alert_and_response(self) -> None:
        fr, es, wco = self["fr-officer"], self["es-officer"], self["wco-ocu"]
        deadline = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()
        action = (
            "Express consignment AWB 176-55501234 to Madrid, declared as cosmetics: "
            "suspected falsified medicines. Inspect on arrival and report."
        )
        alert_id = await fr.alert(OPERATION, "alerts", ["es-customs"], action, deadline)
        await es.sync()
        [alert] = [m for m in es.read(OPERATION, "alerts", content_type="alert")]
        outcome = "Inspected at the MAD express hub: 1,800 falsified tablets seized (ES-C-0117)."
        await es.respond(OPERATION, "alerts", alert.message_id, outcome)
        await wco.sync()
        await fr.sync()
        answers = [m.json()["outcome"] for m in wco.responses(alert_id)]
        self.out(
            f"6. fr-officer alerts es-customs (deadline {deadline}); es-officer answers; "
            f'wco-ocu and fr-officer read: "{answers[0] if answers else "-"}"'
        )
        ok = answers == [outcome] and len(fr.responses(alert_id)) == 1
        self.check("alert-answered", ok, f"{len(answers)} response(s)")

    # -- 6: the stakeholder -------------------------------------------------------------
    async def stakeholder(self) -> None:
        wco, brand = self["wco-ocu"], self["brandx-analyst"]
        briefing = (
            "Briefing for rights holders: the operational phase of STOP V has begun. "
            "Sanitised results will be released in this area."
        )
        await wco.post(OPERATION, "stakeholders", "text", content.text(briefing))
        await brand.sync()
        read = [m.json()["text"] for m in brand.read(OPERATION, "stakeholders")]
        self.check("stakeholder-reads-briefing", read == [briefing], f"{len(read)} message(s)")
        refusals = [
            await self._refused(brand.api.events(OPERATION, area))
            for area in ("plan", "seizures", "alerts")
        ]
        plan = self.ids["plan-attachment"]
        refusals.append(
            await self._refused(brand.download(plan.meta, plan.blob_id, self.files / "leak.pdf"))
        )
        local = [m.area for m in brand.read(OPERATION)]
        self.out(
            f"7. brandx-analyst reads the stakeholder briefing; the server refuses it the "
            f"plan, seizures and alerts areas and the plan PDF ({refusals[0]})"
        )
        ok = (
            all(refusals)
            and set(local) == {"stakeholders"}
            and not (self.files / "leak.pdf").exists()
        )
        self.check("stakeholder-refused-customs-areas", ok, "; ".join(map(str, refusals)))

    @staticmethod
    async def _refused(call: Any) -> str:
        """The server's refusal of ``call``, or an empty string if it was served."""
        try:
            await call
        except ForbiddenError as exc:
            return exc.code
        return ""

    # -- 7: the audit log ---------------------------------------------------------------
    async def audit(self) -> None:
        reports = [await self[p].verify_audit() for p in ("wco-ocu", "brandx-analyst")]
        size = reports[-1].size
        self.out(
            f"8. audit log: {size} entries verified against the instance's signed "
            "checkpoint by wco-ocu and brandx-analyst"
        )
        self.check("audit-verifies", size > 0, f"{size} entries")

    # -- what each participant sees -------------------------------------------------------
    async def views(self) -> None:
        self.out("\nWhat each participant sees (verified and decrypted on their own device):")
        warnings = 0
        for p in PARTICIPANTS:
            client = self[p.profile]
            await client.sync()
            warnings += len(client.warnings())
            role = f"{p.role}, service account" if p.kind == "service" else p.role
            areas = " | ".join(self._view(client, a.name) for a in AREAS)
            self.out(f"   {p.profile:<16} {p.org} ({role}): {areas}")
        self.check("no-integrity-warnings", warnings == 0, f"{warnings} warning(s)")

    @staticmethod
    def _view(client: Client, area: str) -> str:
        if (OPERATION, area) not in client.store.areas():
            return f"{area}: no access"
        return f"{area}: {len(client.read(OPERATION, area))}"


# -- the command -------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m opseal.client.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="stop the server after the scenario; exit 0 only if every outcome held",
    )
    parser.add_argument(
        "--dir", default="var/demo", help="demo folder, wiped first (default: var/demo)"
    )
    parser.add_argument(
        "--port", type=int, help="server port (default 8443 if free; 0: any free port)"
    )
    return parser


def _summary(result: DemoResult, out: Out) -> None:
    held = sum(ok for ok, _ in result.outcomes.values())
    out(f"\nOutcomes: {held} of {len(result.outcomes)} held")
    for name, (ok, seen) in result.outcomes.items():
        out(f"   [{'ok' if ok else 'FAILED'}] {name}: {seen}")


def _cli_help(result: DemoResult, server: DemoServer, out: Out) -> None:
    opseal = Path(sys.executable).parent / "opseal"
    csv = _rel(result.home.parent / "files" / "seizures-de.csv")
    admin = _rel(Path(server.command()[0]))
    cli = f"{_rel(opseal)} --home {_rel(result.home)}"
    profiles = ", ".join(p.profile for p in PARTICIPANTS)
    out(f"\nThe server keeps running on {server.url} (Ctrl-C stops it). Use the CLI against it:")
    out(f"   profiles in {_rel(result.home)}: {profiles}")
    out(f"   export OPSEAL_PASSPHRASE={PASSPHRASE}    # the passphrase of every demo profile")
    for line in (
        f"--profile fr-officer read {OPERATION} seizures",
        f"--profile wco-ocu acks {result.plan_id}",
        "--profile es-officer tail",
        f"--profile de-ncen submit seizures {csv} --op {OPERATION}",
        f"--profile brandx-analyst read {OPERATION} stakeholders",
        "--profile wco-ocu audit verify",
    ):
        out(f"   {cli} {line}")
    out(f"   instance admin: {admin} --config {_rel(server.config)} status")
    out(f"   in a browser (when node built the app): {server.url}/")
    out(f"   {cli} web verify {server.url}/    # is it the installed app?")


def run(argv: list[str] | None = None, out: Out = print) -> DemoResult:
    """Play the demo; returns its outcomes. Raises :class:`DemoError` if it cannot run."""
    args = _parser().parse_args(argv)
    root = Path(args.dir).resolve()
    _fresh_dir(root)
    server = DemoServer(root, _pick_port(args.port))
    out(f"OpSeal demo: Operation STOP V on {server.url}, SQLite under {_rel(root)}\n")
    try:
        codes = _administer(server, out)
        server.start()
        result = asyncio.run(Scenario(server.url, root, out).play(codes))
        _summary(result, out)
        if args.serve:
            _cli_help(result, server, out)
            with contextlib.suppress(KeyboardInterrupt):
                server.wait()
    finally:
        server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m opseal.client.demo``: exit 0 when every outcome held, 1 if not, 2 on trouble."""
    try:
        return run(argv).exit_code
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
