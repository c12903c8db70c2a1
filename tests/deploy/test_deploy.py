"""The deployment recipe under load and a node failure: ``make test-deploy``.

nginx (config derived from deploy/nginx/opseal.conf by ``front.py``, which bench/server.py
shares) in front of two ``opseal-server serve`` nodes on a fresh PostgreSQL database with
S3-protocol blob storage (moto's server), all on loopback.
Devices stream over WebSockets through nginx, a national system submits seizure
records with the client library, a large attachment goes up and comes back, and one node is
SIGKILLed mid-run and restarted; a backup taken during the load restores onto an empty database
and a new bucket, where a member's client is told exactly which audit entries were lost.
Marked ``deploy``: outside the normal suite (minutes, not seconds). The scale comes from
OPSEAL_DEPLOY_DEVICES / _RECORDS / _MB (defaults 50 / 10,000 / 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opseal.client.api import ApiClient
from opseal.client.audit import LogRestoredError
from opseal.client.client import Client
from opseal.client.errors import ClientError
from opseal.client.profile import Profile
from opseal.crypto.charter import Charter, Member
from opseal.crypto.keys import SigningKey
from opseal.server.services import instance as admin
from opseal.server.services.audit import address_tag
from opseal.server.storage import audit as audit_store
from opseal.server.storage.db import migrate
from opseal.wire.stream import StreamEvent

from ..client.conftest import AREAS, FAST, ORGS, PASSPHRASE, REPORTING
from ..server.conftest import PG_URL, fresh_database
from ..server.helpers import envelope, make_area
from ..server.procs import (
    Node,
    ServerProcess,
    admin_context,
    free_port,
    open_operation,
    prepare_database,
)
from .front import find_nginx, nodes_behind_nginx, running

pytestmark = pytest.mark.deploy

DEVICES = int(os.environ.get("OPSEAL_DEPLOY_DEVICES", "50"))
RECORDS = int(os.environ.get("OPSEAL_DEPLOY_RECORDS", "10000"))
ATTACHMENT_MB = int(os.environ.get("OPSEAL_DEPLOY_MB", "200"))
OP = "op-stop-v"
AREA = "seizures"
AWS = {"AWS_ACCESS_KEY_ID": "opseal-test", "AWS_SECRET_ACCESS_KEY": "x" * 20,
       "AWS_DEFAULT_REGION": "eu-west-1"}  # fmt: skip


class Follower:
    """One device's stream through nginx; reconnects with its cursor when the stream drops
    (its node was killed) and keeps the number of every message of the area it receives."""

    def __init__(self, api: ApiClient, cursor: str) -> None:
        self.api, self.cursor = api, cursor
        self.seen: list[int] = []
        self.reconnects = 0
        self.problems: list[object] = []
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                async for message in self.api.stream(self.cursor):
                    if not isinstance(message, StreamEvent):
                        self._note(message)  # idle frames and errors, for a failure message
                    else:
                        event = message.event
                        if event.kind == "message" and event.area == AREA:
                            self.seen.append(event.seq)
                        self.cursor = message.cursor
            except (ClientError, aiohttp.ClientError, OSError) as exc:
                self._note(exc)
            self.reconnects += 1
            await asyncio.sleep(0.2)

    def _note(self, problem: object) -> None:
        if len(self.problems) < 5:
            self.problems.append(problem)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
def nginx_bin() -> str:
    found = find_nginx()
    if found is None:
        pytest.fail("nginx is not installed (`.ci/run` installs Debian's nginx-light)")
    return found


@pytest.fixture
async def pg_url(tmp_path) -> AsyncIterator[str]:
    if not PG_URL:
        pytest.fail("OPSEAL_TEST_POSTGRES_URL is not set (.ci/run exports it)")
    async for url in fresh_database("postgresql", tmp_path):
        await prepare_database(url)
        yield url


@pytest.fixture
def s3_store(tmp_path) -> Iterator[tuple[str, str]]:
    """moto's S3 server on loopback with a bucket: (endpoint, blob_store setting)."""
    yield from _s3_server(tmp_path)


def _new_bucket(endpoint: str) -> str:
    """A fresh bucket on the S3 server; its blob_store setting."""
    import botocore.session

    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="eu-west-1",
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    bucket = f"opseal-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return f"s3://{bucket}/instance"


def _s3_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **AWS}
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with running(args, port, tmp_path / "moto.log", env):
        yield endpoint, _new_bucket(endpoint)


class Front:
    """nginx as the clients see it (its URL and certificate), and the admin context."""

    def __init__(self, url: str, ctx: Any, ca_bundle: str) -> None:
        self.url, self.ctx, self.ca_bundle = url, ctx, ca_bundle


async def enrol_client(
    front: Front, home: Path, org: str, user: str, device: str, root: SigningKey
) -> Client:
    """As the client conftest enrols, through nginx, trusting its certificate."""
    name, org_kind, role = ORGS[org]
    with contextlib.suppress(Exception):  # registered by an earlier enrolment
        await admin.create_organisation(
            front.ctx, org, name, org_kind, can_coordinate=role == "coordinator"
        )
    code = await admin.create_enrolment_code(front.ctx, org)
    return await Client.enrol(
        Profile(device, home), server=front.url, code=code, passphrase=PASSPHRASE, root=root,
        org_id=org, user_id=user, device_id=device, params=FAST, ca_bundle=front.ca_bundle,
    )  # fmt: skip


def record(n: int) -> dict[str, Any]:
    return {"record_id": f"R{n:06d}", "case_ref": f"C-{n}", "reporting_country": "FR",
            "seizure_date": "2025-05-13", "transport_mode": "postal", "ecommerce": True,
            "goods": [{"category": "medicines", "quantity_items": 1 + n % 97}]}  # fmt: skip


async def test_two_nodes_behind_nginx_survive_a_killed_node_under_load(
    tmp_path, nginx_bin, pg_url, s3_store
):
    """Streams, 10,000 records and a 200 MB attachment through nginx; node A is SIGKILLed and
    restarted mid-run; everything acknowledged is there once, streams have no gap, the
    attachment verifies and the audit log verifies; the backup taken meanwhile restores."""
    started = time.monotonic()
    endpoint, store = s3_store
    env = {**AWS, "OPSEAL_BLOB_STORE": store, "OPSEAL_S3_ENDPOINT_URL": endpoint,
           "OPSEAL_AUDITOR_ORGS": "wco"}  # fmt: skip
    clients: list[Any] = []
    async with contextlib.AsyncExitStack() as stack:
        deployment = await stack.enter_async_context(
            nodes_behind_nginx(nginx_bin, pg_url, tmp_path, env=env)
        )
        node_a = deployment.nodes[0]
        ctx = await stack.enter_async_context(admin_context(pg_url))
        stack.push_async_callback(_close_all, clients)
        backups = Backups(tmp_path, {**env, "OPSEAL_DATABASE_URL": pg_url})
        await backups.make_key()
        front = Front(deployment.url, ctx, ca_bundle=deployment.ca_bundle)
        await _spoof_an_address(front, ctx)
        await _play(front, node_a, tmp_path, clients, backups)
        await _restore(tmp_path, backups, clients, endpoint, env)
    print(f"\ntest-deploy: {DEVICES} devices, {RECORDS} records, {ATTACHMENT_MB} MB, "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip


async def _spoof_an_address(front: Front, ctx: Any) -> None:
    """A stranger's own X-Forwarded-For through nginx is replaced, not believed: the refusal
    it earns is audited under the peer nginx saw (here loopback), not the address it claimed."""
    ssl_context = ssl.create_default_context(cafile=front.ca_bundle)
    async with (
        aiohttp.ClientSession() as session,
        session.get(front.url + "/api/v1/sync", ssl=ssl_context,
                    headers={"X-Forwarded-For": "203.0.113.9"}) as answer,
    ):  # fmt: skip
        assert answer.status == 401
    async with ctx.engine.connect() as conn:
        size = await audit_store.size(conn)
        logged = [json.loads(body) for _, body in await audit_store.read_entries(conn, 0, size)]
    tags = [e["remote_tag"] for e in logged if e.get("event") == "refused"]
    assert tags == [address_tag(ctx, "127.0.0.1")], tags


async def _close_all(clients: list[Any]) -> None:
    for client in reversed(clients):  # the streams first, then the devices
        with contextlib.suppress(Exception):
            await client.close()


async def _onboard(front: Front, home: Path, clients: list[Any]) -> dict[str, Any]:
    roots = {org: SigningKey.generate() for org in ORGS}
    members: dict[str, Any] = {}
    for org in ORGS:
        members[org] = await enrol_client(front, home, org, f"{org}-user", f"{org}-device",
                                          roots[org])  # fmt: skip
        clients.append(members[org])
    coordinator = members["wco"]
    draft = Charter.create(
        operation_id=OP, code="STOP V", name="Operation STOP V",
        starts_at=coordinator.now(), ends_at=coordinator.now() + 30 * 86400,
        members=[Member(org, n, k, r, roots[org].verify_key, REPORTING.get(org, ()))
                 for org, (n, k, r) in ORGS.items()],
        areas=AREAS, issued_at=coordinator.now() - 5,
    )  # fmt: skip
    user_key, _ = await asyncio.to_thread(coordinator.profile.load_user, PASSPHRASE)
    await coordinator.create_operation(draft, user_key)
    # The streaming devices: more devices of the German administration, each joining.
    for i in range(DEVICES):
        device = await enrol_client(front, home, "de-customs", f"de-user-{i}", f"de-stream-{i}",
                                    roots["de-customs"])  # fmt: skip
        clients.append(device)
        members[f"stream-{i}"] = device
    for org, client in members.items():
        if org != "wco":
            await client.join(OP, roots["wco"].verify_key.key_id)
    await coordinator.admit()
    return members


async def _play(front: Front, node_a: ServerProcess, tmp: Path, clients: list[Any],
                backups: Backups) -> None:  # fmt: skip
    members = await _onboard(front, tmp, clients)
    national, reader = members["fr-customs"], members["de-customs"]
    await national.sync()
    streams = [members[f"stream-{i}"] for i in range(DEVICES)]
    followers = []
    for device in streams:
        cursor = (await device.api.sync()).cursor
        followers.append(Follower(device.api, cursor))
        clients.append(followers[-1])

    # The national system submits while the attachment goes up; node A dies mid-run.
    records = [record(n) for n in range(RECORDS)]
    source = tmp / "scan.bin"
    await asyncio.to_thread(_write_random, source, ATTACHMENT_MB)
    done: list[int] = []
    began = time.monotonic()
    submit = asyncio.create_task(_timed(_submit(national, records, done.append)))
    upload = asyncio.create_task(_timed(national.upload(OP, AREA, source)))
    try:
        async with asyncio.timeout(120):
            while sum(done) < RECORDS // 3:  # a third submitted: node A dies mid-run
                assert not submit.done(), submit
                await asyncio.sleep(0.05)
                if backups.task is None and sum(done) >= RECORDS // 6:
                    backups.start()  # a backup taken under the same load
        await node_a.kill()
        await asyncio.sleep(1)
        await node_a.start()
        ids, submitted_at = await submit
        attachment, uploaded_at = await upload
    finally:
        for task in (submit, upload):
            task.cancel()
        await asyncio.gather(submit, upload, return_exceptions=True)
    print(f"\ntest-deploy: {RECORDS} records in {submitted_at - began:.1f} s, "
          f"{ATTACHMENT_MB} MB uploaded in {uploaded_at - began:.1f} s (concurrently, "
          "across the kill)")  # fmt: skip
    await backups.summary()  # records after the backup, whatever the scale: lost in a restore
    late = [record(n) for n in range(RECORDS, RECORDS + 20)]
    ids += await national.post_seizures(OP, late, AREA)
    # Every acknowledged record is there exactly once, on a reader's verified copy.
    assert len(ids) == len(set(ids)) == RECORDS + len(late)
    await reader.sync()
    stored = [m.message_id for m in reader.read(OP, AREA)]
    assert len(stored) == len(set(stored))
    assert set(ids) <= set(stored)
    assert reader.gaps(OP, AREA) == {}
    # Every stream got every message of the area, in order, once, across the kill.
    total = len(stored)
    deadline = time.monotonic() + 60
    while any(len(f.seen) < total for f in followers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for follower in followers:
        await follower.close()
    seqs = followers[0].seen
    assert seqs, followers[0].problems
    assert len(seqs) == len(set(seqs)) == total
    assert seqs == sorted(seqs)
    for follower in followers:
        assert follower.seen == seqs, f"stream {followers.index(follower)}: gap or duplicate"
    assert any(f.reconnects for f in followers), "no stream was on the killed node"
    # The attachment downloads through nginx and verifies against the signed metadata.
    began = time.monotonic()
    out = await reader.download(attachment.meta, attachment.blob_id, tmp / "scan.out")
    print(f"test-deploy: {ATTACHMENT_MB} MB downloaded in {time.monotonic() - began:.1f} s")
    assert await asyncio.to_thread(_sha256, out) == await asyncio.to_thread(_sha256, source)
    # The audit log verifies, for the auditor and for a member.
    await members["wco"].verify_audit()
    backups.seen = (await reader.verify_audit()).size
    backups.reader = reader
    # The alerting gauges (deploy/prometheus/opseal-alerts.yml) on a node, read directly.
    async with aiohttp.ClientSession() as session, session.get(node_a.url + "/metrics") as got:
        text = await got.text()
    gauges = dict(re.findall(r"^(opseal_audit_checkpoint_age_seconds|opseal_db_pool_\w+) (\S+)$",
                             text, re.M))  # fmt: skip
    assert 0 <= float(gauges["opseal_audit_checkpoint_age_seconds"]) < 60
    assert float(gauges["opseal_db_pool_size"]) == 20
    assert 0 <= float(gauges["opseal_db_pool_in_use"]) <= 20


class Backups:
    """``opseal-server backup-key``, ``backup`` and ``restore``, as the operator runs them."""

    PASSPHRASE = "an operator's long passphrase"

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.key, self.file = tmp / "operator.key", tmp / "instance.backup"
        self.task: asyncio.Task[subprocess.CompletedProcess[str]] | None = None
        self.seen = 0
        self.reader: Any = None

    async def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, **self.env, "OPSEAL_BACKUP_PASSPHRASE": self.PASSPHRASE, **env}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "opseal.server.cli", *argv],
            env=environ, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    async def make_key(self) -> None:
        await self.run("backup-key", "--out", str(self.key))

    def start(self) -> None:
        self.task = asyncio.create_task(
            self.run("backup", "--recipient", f"{self.key}.pub", "--out", str(self.file))
        )

    async def summary(self) -> dict[str, Any]:
        assert self.task is not None
        return json.loads((await self.task).stdout)


async def _restore(tmp: Path, backups: Backups, clients: list[Any], endpoint: str,
                   env: dict[str, str]) -> None:  # fmt: skip
    """The backup restores onto an empty database and a new bucket; the reader's client,
    moved to the restored instance, is told exactly which audit entries were lost."""
    summary = await backups.summary()
    kept = summary["audit_size"]
    assert 0 < kept < backups.seen  # taken mid-run: later entries are not in it
    async for fresh in fresh_database("postgresql", tmp / "restored"):
        await asyncio.to_thread(migrate, fresh)
        store = await asyncio.to_thread(_new_bucket, endpoint)
        await backups.run("restore", str(backups.file), "--key", str(backups.key),
                          OPSEAL_DATABASE_URL=fresh, OPSEAL_BLOB_STORE=store)  # fmt: skip
        async with ServerProcess(fresh, env={**env, "OPSEAL_BLOB_STORE": store}) as restored:
            reader = backups.reader
            old = reader.api
            reader.api = await ApiClient(restored.url).__aenter__()
            try:
                await reader.login()
                with pytest.raises(LogRestoredError) as lost:
                    await reader.verify_audit()
                assert (lost.value.kept, lost.value.seen) == (kept, backups.seen)
                report = await reader.verify_audit(accept_restore=True)
                assert report.restored is not None
                assert report.restored.kept == kept
            finally:
                await reader.api.close()
                reader.api = old


async def _submit(client: Any, records: list[dict[str, Any]], progress: Any) -> list[str]:
    """As a national system's job would: submit, and on a failure submit again (the records
    already posted are skipped, so nothing is sent twice)."""
    for _ in range(5):
        try:
            return await client.post_seizures(OP, records, AREA, progress)
        except ClientError:
            await asyncio.sleep(1)
    return await client.post_seizures(OP, records, AREA)


async def _timed(job: Any) -> tuple[Any, float]:
    """``job``'s result and when it ended (``time.monotonic()``)."""
    result = await job
    return result, time.monotonic()


def _write_random(path: Path, mb: int) -> None:
    with path.open("wb") as out:
        for _ in range(mb):
            out.write(os.urandom(1024 * 1024))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def test_a_draining_node_behind_nginx_hands_its_streams_to_the_other(
    tmp_path, nginx_bin, pg_url
):
    """SIGUSR1 drains node A: its streams are closed with the drain hint, streams opened
    through nginx afterwards all land on node B (nginx passes A's 503 on, so no client sees
    it), and a message node A still accepts reaches them."""
    async with (
        nodes_behind_nginx(nginx_bin, pg_url, tmp_path) as front,
        admin_context(pg_url) as ctx,
        aiohttp.ClientSession() as session,
    ):
        node = Node(front.url, ctx, ssl_context=front.ssl_context())
        try:
            op = await open_operation(node)
            state, secret = await make_area(op, AREA, ["customs", "partner"])
            partner = op.actors["partner"].api
            cursor = (await partner.sync()).cursor
            url = front.url.replace("https", "wss", 1) + "/api/v1/stream"

            async def open_stream() -> aiohttp.ClientWebSocketResponse:
                ws = await session.ws_connect(
                    url, params={"cursor": cursor}, ssl=front.ssl_context(),
                    headers={"Authorization": f"Bearer {partner.token}"},
                )  # fmt: skip
                assert (await ws.receive_json(timeout=10))["type"] == "idle"
                return ws

            before = [await open_stream() for _ in range(6)]
            assert await _streams_on(session, front.nodes[0]) > 0  # least_conn used both
            os.kill(front.nodes[0].pid, signal.SIGUSR1)
            # The streams on A are closed; those on B stay open (nothing arrives on them).
            got = await asyncio.gather(*(ws.receive(timeout=5) for ws in before),
                                       return_exceptions=True)  # fmt: skip
            hints = [m.extra for m in got if isinstance(m, aiohttp.WSMessage)
                     and m.type == aiohttp.WSMsgType.CLOSE]  # fmt: skip
            assert set(hints) == {"node draining; reconnect with your cursor"}
            assert len(hints) < len(before), "every stream was on node A"
            after = [await open_stream() for _ in range(6)]
            assert await _streams_on(session, front.nodes[0]) == 0
            assert await _streams_on(session, front.nodes[1]) >= len(after)
            # Node A still takes posts (sent to it directly); B's streams get it by NOTIFY.
            async with ApiClient(front.nodes[0].url) as on_a:
                on_a.token = op.actors["customs"].api.token
                sealed = envelope(op, "customs", state, secret, 1, "after the drain")
                await on_a.post_message(op.id, AREA, sealed.to_bytes())
            for ws in after:
                message = await ws.receive_json(timeout=10)
                assert (message["type"], message["event"]["kind"]) == ("event", "message")
            for ws in before + after:
                await ws.close()
        finally:
            await node.close()


async def _streams_on(session: aiohttp.ClientSession, node: ServerProcess) -> float:
    """The node's ``opseal_stream_subscribers`` gauge, read from the node directly."""
    async with session.get(node.url + "/metrics") as answer:
        text = await answer.text()
    return float(re.search(r"^opseal_stream_subscribers (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
