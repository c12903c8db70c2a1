"""Bad requests get their documented error and change nothing but the audited refusal."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jsonschema_rs
import pytest
from sqlalchemy import select

from opseal.crypto.encoding import b64e
from opseal.server.config import Settings
from opseal.server.http.openapi import build_document
from opseal.server.storage import audit as audit_store
from opseal.server.storage.tables import audit_leaves, metadata

from .conftest import start_server
from .helpers import make_area, post_text

DOCUMENT = build_document(Settings())
OP = "/api/v1/operations/op-stop-v"
AREA = f"{OP}/areas/seizures"
AREA_TEMPLATE = "/api/v1/operations/{operation_id}/areas/{area}"


@dataclass(frozen=True)
class Bad:
    """A bad request, the path template it is documented under (None: no route) and the
    refusal it must get."""

    name: str
    method: str
    path: str
    template: str | None
    status: int
    code: str
    body: bytes | None = None
    who: str | None = "customs"
    mentions: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def audited(self) -> bool:
        """Refusals by the API are audited; the router's 404 and 405 happen before it."""
        return self.template is not None


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES = [
    Bad("malformed-json", "POST", f"{AREA}/messages", f"{AREA_TEMPLATE}/messages", 400,
        "bad_request", b'{"envelope": "AAAA"', mentions="malformed JSON"),
    Bad("array-not-object", "POST", f"{AREA}/messages/batch", f"{AREA_TEMPLATE}/messages/batch",
        400, "bad_request", b'["AAAA"]', mentions="JSON object"),
    Bad("deeply-nested-json", "POST", f"{AREA}/commits", f"{AREA_TEMPLATE}/commits", 400,
        "bad_request", b"[" * 100_000, mentions="malformed JSON"),
    Bad("body-not-in-its-encoding", "POST", "/api/v1/auth/challenge", "/api/v1/auth/challenge",
        400, "bad_request", js({"device_id": "x"}), who=None, mentions="Content-Encoding",
        headers=(("Content-Encoding", "gzip"),)),
    Bad("number-for-base64", "POST", f"{AREA}/messages", f"{AREA_TEMPLATE}/messages", 400,
        "bad_request", js({"envelope": 12345}), mentions="base64url"),
    Bad("number-for-charter", "POST", "/api/v1/operations", "/api/v1/operations", 400,
        "bad_request", js({"charter": 12345}), mentions="'charter'"),
    Bad("string-for-list", "POST", f"{AREA}/messages/batch", f"{AREA_TEMPLATE}/messages/batch",
        400, "bad_request", js({"envelopes": "AAAA"}), mentions="'envelopes'"),
    Bad("number-for-string", "POST", "/api/v1/auth/challenge", "/api/v1/auth/challenge", 400,
        "bad_request", js({"device_id": 7}), who=None, mentions="'device_id'"),
    Bad("nul-in-json-string", "POST", "/api/v1/auth/challenge", "/api/v1/auth/challenge", 400,
        "bad_request", b'{"device_id": "a\\u0000b"}', who=None, mentions="NUL"),
    Bad("surrogate-in-json-string", "POST", "/api/v1/auth/challenge", "/api/v1/auth/challenge",
        400, "bad_request", b'{"device_id": "a\\ud800b"}', who=None, mentions="surrogate"),
    Bad("unknown-phase", "POST", f"{OP}/phase", "/api/v1/operations/{operation_id}/phase", 400,
        "bad_request", js({"phase": "finished"}), who="coordinator", mentions="phase"),
    Bad("non-integer-query", "GET", f"{AREA}/events?limit=ten", f"{AREA_TEMPLATE}/events", 400,
        "bad_request", mentions="'limit'"),
    Bad("query-out-of-bounds", "GET", f"{AREA}/events?limit=0", f"{AREA_TEMPLATE}/events", 400,
        "bad_request", mentions="'limit'"),
    Bad("cursor-out-of-range", "GET",
        "/api/v1/sync?cursor=" + b64e(b"op-stop-v\x1fseizures\x1f" + b"9" * 30), "/api/v1/sync",
        400, "bad_request", mentions="cursor"),
    Bad("stream-without-upgrade", "GET", "/api/v1/stream", "/api/v1/stream", 400, "bad_request",
        mentions="WebSocket"),
    Bad("no-token", "GET", "/api/v1/operations", "/api/v1/operations", 401, "unauthorized",
        who=None),
    Bad("unknown-operation", "GET", "/api/v1/operations/op-nowhere",
        "/api/v1/operations/{operation_id}", 404, "not_found", mentions="op-nowhere"),
    Bad("unknown-operation-area", "GET", "/api/v1/operations/op-nowhere/areas/seizures/events",
        f"{AREA_TEMPLATE}/events", 404, "not_found", mentions="op-nowhere"),
    Bad("unknown-area", "GET", f"{OP}/areas/nowhere/events", f"{AREA_TEMPLATE}/events", 404,
        "not_found", mentions="nowhere"),
    Bad("post-to-unknown-area", "POST", f"{OP}/areas/nowhere/blobs", f"{AREA_TEMPLATE}/blobs",
        404, "not_found", js({"size": 10, "sha256": "A" * 43}), mentions="nowhere"),
    Bad("unknown-device", "GET", "/api/v1/devices/nobody", "/api/v1/devices/{device_id}", 404,
        "not_found", mentions="nobody"),
    Bad("unknown-organisation", "GET", "/api/v1/orgs/nobody", "/api/v1/orgs/{org_id}", 404,
        "not_found", mentions="nobody"),
    Bad("unknown-blob", "GET", f"/api/v1/blobs/{uuid.UUID(int=7)}", "/api/v1/blobs/{blob_id}",
        404, "not_found"),
    Bad("nul-in-path-id", "GET", "/api/v1/devices/a%00b", "/api/v1/devices/{device_id}", 400,
        "bad_request", mentions="'device_id'"),
    Bad("nul-in-operation-id", "GET", "/api/v1/operations/a%00b/charter",
        "/api/v1/operations/{operation_id}/charter", 400, "bad_request",
        mentions="'operation_id'"),
    Bad("unknown-route", "GET", "/api/v1/nothing", None, 404, "not_found", mentions="nothing"),
    Bad("unknown-version", "POST", "/api/v2/operations", None, 404, "not_found", js({})),
    Bad("wrong-method", "DELETE", "/api/v1/operations", None, 405, "method_not_allowed"),
    Bad("wrong-method-on-get", "PUT", "/api/v1/whoami", None, 405, "method_not_allowed", js({})),
]  # fmt: skip


def schema_for(bad: Bad, status: int) -> dict[str, Any]:
    """The documented response schema, with the document's components for its references."""
    if bad.template is None:
        name = {404: "NotFound", 405: "MethodNotAllowed"}[status]
        response = DOCUMENT["components"]["responses"][name]
    else:
        responses = DOCUMENT["paths"][bad.template][bad.method.lower()]["responses"]
        assert str(status) in responses, f"{bad.name}: {status} is not documented"
        response = responses[str(status)]
        if "$ref" in response:
            response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return {"allOf": [schema], "components": DOCUMENT["components"]}


async def state(server) -> tuple[dict[str, list[str]], int]:
    """Every row of every table but the audit log's, and the audit log's size."""
    async with server.ctx.engine.connect() as conn:
        tables = {
            table.name: sorted(repr(tuple(row)) for row in await conn.execute(select(table)))
            for table in metadata.sorted_tables
            if not table.name.startswith("audit_")
        }
        return tables, await audit_store.size(conn)


async def entries_since(server, index: int) -> list[dict[str, Any]]:
    async with server.ctx.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_leaves.c.entry).where(audit_leaves.c.idx >= index).order_by("idx")
        )
        return [json.loads(row[0]) for row in rows]


async def send(server, bad: Bad, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = dict(bad.headers)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            bad.method, server.url + bad.path, data=bad.body, headers=headers
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


async def refuse(server, bad: Bad, token: str | None, views: Any = None) -> None:
    """Send ``bad`` and check its refusal: documented, and nothing changed but its audit entry."""
    before, size = await state(server)
    seen_before = await views() if views else None
    status, body = await send(server, bad, token)
    assert (status, body["error"]["code"]) == (bad.status, bad.code), (bad.name, body)
    assert bad.mentions in body["error"]["message"], (bad.name, body)
    validator = jsonschema_rs.validator_for(schema_for(bad, status))
    assert validator.is_valid(body), (bad.name, body)
    after, _ = await state(server)
    assert after == before, f"{bad.name}: the refused request changed stored state"
    if views:
        assert await views() == seen_before, f"{bad.name}: the API shows a change"
    new = await entries_since(server, size)
    if bad.audited:
        assert [(e["event"], e["code"]) for e in new] == [("refused", bad.code)], bad.name
    else:
        assert new == [], bad.name


@pytest.fixture
async def area(operation):
    """The 'seizures' area with the customs device in it and one message."""
    state_, secret = await make_area(operation, "seizures", ["customs"])
    await post_text(operation, "customs", "seizures", state_, secret, 1)
    return operation


@pytest.mark.parametrize("bad", CASES, ids=[bad.name for bad in CASES])
async def test_bad_request_gets_its_documented_error_and_changes_nothing(area, bad):
    """The request is refused with its documented status and code, and nothing is stored."""
    customs = area.actors["customs"].api

    async def views() -> Any:
        return await customs.operations(), await customs.events(area.id, "seizures")

    token = area.actors[bad.who].api.token if bad.who else None
    await refuse(area.server, bad, token, views)


@pytest.fixture
async def small_server(settings) -> AsyncIterator[Any]:
    """A server that accepts JSON bodies of at most 1 KiB."""
    srv = await start_server(settings.replace(max_body_bytes=1024))
    yield srv
    await srv.runner.cleanup()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_gets_413_and_changes_nothing(small_server, chunked):
    """A JSON body over max_body_bytes is refused with payload_too_large, however it is sent."""
    payload = js({"device_id": "customs-device", "padding": "x" * 2000})
    body: Any = payload
    if chunked:

        async def stream() -> AsyncIterator[bytes]:
            yield payload

        body = stream()
    bad = Bad("oversized", "POST", "/api/v1/auth/challenge", "/api/v1/auth/challenge", 413,
              "payload_too_large", mentions="1024 bytes")  # fmt: skip
    before, size = await state(small_server)
    async with (
        aiohttp.ClientSession() as session,
        session.post(small_server.url + bad.path, data=body) as response,
    ):
        status, answer = response.status, await response.json()
    assert (status, answer["error"]["code"]) == (413, "payload_too_large"), answer
    assert bad.mentions in answer["error"]["message"]
    assert jsonschema_rs.validator_for(schema_for(bad, 413)).is_valid(answer)
    assert await state(small_server) == (before, size + 1)
    assert [e["code"] for e in await entries_since(small_server, size)] == ["payload_too_large"]


async def test_body_within_the_limit_is_accepted(small_server):
    """A JSON body just under max_body_bytes is served as usual."""
    padding = "x" * (1024 - len(js({"device_id": "customs-device", "padding": ""})))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            small_server.url + "/api/v1/auth/challenge",
            data=js({"device_id": "customs-device", "padding": padding}),
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def test_every_answer_has_its_own_request_id_or_the_clients(small_server):
    """The request id ties a client's report to the server's log line: 32 hex digits, new for
    each request and telling nothing of the others (not a count), or the client's own."""
    url = small_server.url + "/api/v1/auth/challenge"
    body = js({"device_id": "customs-device"})
    seen = []
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(url, data=body) as response:
                seen.append(response.headers["X-Request-Id"])
        async with session.post(url, data=body, headers={"X-Request-Id": "mine-42"}) as response:
            assert response.headers["X-Request-Id"] == "mine-42"
    assert len(set(seen)) == 3
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in seen)
    numbers = [int(rid, 16) for rid in seen]
    assert numbers[2] - numbers[1] != numbers[1] - numbers[0]  # not a counter
