"""The OpenAPI document: valid, complete, and true of the live server (checked by schemathesis)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import hypothesis
import jsonschema_rs
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from opseal.server.config import Settings
from opseal.server.http.app import create_app
from opseal.server.http.openapi import build_document
from opseal.wire.bundle import installed
from opseal.wire.endpoints import ENDPOINTS
from opseal.wire.errors import ERRORS, STATUSES

from .helpers import make_area, post_text, receipt

API = "/api/v1"
BATCH = f"{API}/operations/{{operation_id}}/areas/{{area}}/messages/batch"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
EXAMPLES = int(os.environ.get("OPSEAL_SCHEMATHESIS_EXAMPLES", "20"))
"""Generated cases per operation and generation mode (about 20 s per backend at 20)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def registered(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def references(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(references(value) for value in node))
    return set()


def resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def fetch_document(server) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}{API}/openapi.json") as response,
    ):
        assert response.status == 200
        return await response.json()


async def test_served_document_is_valid_openapi_3_1(server):
    """The served document validates against the OpenAPI 3.1 schema and its references resolve."""
    document = await fetch_document(server)
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()
    for pointer in references(document):
        assert pointer.startswith("#/"), pointer
        resolve(document, pointer)  # raises KeyError when dangling
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_every_route_is_documented_and_every_documented_route_exists():
    """The aiohttp routes (HEAD aside) and the document's operations are the same set."""
    settings = Settings()
    routes, operations = registered(settings), documented(build_document(settings))
    assert routes - operations == set(), "routes missing from the OpenAPI document"
    assert operations - routes == set(), "documented operations the server does not route"


def test_every_route_is_an_endpoint_of_the_table():
    """The router serves exactly the endpoints of the wire route table."""
    table = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}
    assert registered(Settings()) == table
    assert len(table) == len(ENDPOINTS), "an endpoint is listed twice"


def test_every_documented_error_status_and_code_is_in_the_table():
    """Each error response an operation refers to is a table status whose codes are table codes."""
    document = build_document(Settings())
    statuses = {entry.status for entry in ERRORS.values()}
    for item in document["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                if "$ref" not in response:
                    continue
                name = response["$ref"].rsplit("/", 1)[1]
                assert int(status) in statuses
                assert STATUSES[int(status)].name == name
                schema = document["components"]["responses"][name]["content"]
                codes = schema["application/json"]["schema"]["allOf"][1]["properties"]
                assert set(codes["error"]["properties"]["code"]["enum"]) <= set(ERRORS)


def test_every_operation_documents_its_errors_with_the_error_schema():
    """Each operation documents 429 and 500, and every 4xx/5xx response uses the Error schema."""
    document = build_document(Settings())
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert {"429", "500"} <= set(op["responses"]), (method, path)
            if op.get("security") != []:
                assert "401" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400 and (path, status) != ("/readyz", "503"):  # a probe
                    assert response["$ref"].startswith("#/components/responses/"), (path, status)


def test_document_states_the_limits_the_server_runs_with():
    """The batch limit and chunk size in the document follow the server's settings."""
    document = build_document(Settings(max_batch=42, max_blob_chunk_bytes=4096))
    batch = document["paths"][BATCH]
    envelopes = batch["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert envelopes["properties"]["envelopes"]["maxItems"] == 42
    chunk = document["paths"][f"{API}/blobs/{{blob_id}}"]["put"]["requestBody"]["content"]
    assert chunk["application/octet-stream"]["schema"]["maxLength"] == 4096
    default = build_document(Settings())["paths"][BATCH]["post"]["requestBody"]["content"]
    assert default["application/json"]["schema"]["properties"]["envelopes"]["maxItems"] == 500


# -- the live run ------------------------------------------------------------------------
@dataclass
class Fixtures:
    """Real ids and tokens for generated requests, so they reach past the 404s."""

    path_values: dict[str, str | int]
    tokens: dict[str, str]


async def populate(operation) -> Fixtures:
    """An area with a message, a receipt and a complete blob, for the customs device."""
    customs = operation.actors["customs"].api
    state, secret = await make_area(operation, "seizures", ["customs"])
    message_id = await post_text(operation, "customs", "seizures", state, secret, 1, True)
    await customs.post_receipt(
        receipt(operation, "customs", "seizures", message_id, "read", of="customs")
    )
    data = os.urandom(1000)
    blob = await customs.create_blob(operation.id, "seizures", 1000, hashlib.sha256(data).digest())
    await customs.put_blob_chunk(blob.blob_id, 0, data)
    checkpoint = await customs.audit_checkpoint()
    app = await asyncio.to_thread(installed)  # the web app's files, when built (make web-build)
    assets = {name.rsplit(".", 1)[1]: name for name in app.files} if app else {}
    return Fixtures(
        path_values={
            "operation_id": operation.id,
            "area": "seizures",
            "org_id": "fr-customs",
            "device_id": operation.actors["customs"].device_id,
            "message_id": str(message_id),
            "blob_id": blob.blob_id,
            "size": checkpoint.size,
            "script": assets.get("js", "assets/app-0.js")[len("assets/") : -len(".js")],
            "style": assets.get("css", "assets/app-0.css")[len("assets/") : -len(".css")],
        },
        tokens={role: actor.api.token for role, actor in operation.actors.items()},
    )


def actor_for(method: str, path: str) -> str:
    """Reads run as the coordinator, who reads everything; writes as a customs officer, who
    cannot close the operation; logout as the observer, whose session it may end."""
    if path == f"{API}/auth/logout":
        return "observer"
    return "coordinator" if method == "GET" else "customs"


def cases(op, fixtures: Fixtures, mode: GenerationMode) -> st.SearchStrategy:
    """Generated cases, half of them with real path ids (where the operation has any)."""
    names = {p.name for p in op.path_parameters}
    real = {name: fixtures.path_values[name] for name in names}
    generated = op.as_strategy(generation_mode=mode)
    return st.one_of(generated, op.as_strategy(generation_mode=mode, path_parameters=real))


@dataclass
class Run:
    """What a schemathesis run saw: statuses per operation, and failures."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def unreached(self, schema, web_built: bool) -> list[str]:  # type: ignore[no-untyped-def]
        """GET operations without required query parameters that never answered 2xx."""
        return [
            op.label
            for op in (result.ok() for result in schema.get_all_operations())
            if op.method == "get"
            and op.path != f"{API}/stream"
            and (web_built or op.definition.raw.get("tags") != ["web"])  # unbuilt: 404s
            and not any(p.is_required for p in op.query)
            and not any(200 <= s < 300 for s in self.statuses.get(op.label, []))
        ]


def run_operation(op, fixtures: Fixtures, base_url: str, mode: GenerationMode, run: Run) -> None:
    """Send generated cases for one operation; record statuses and the first failure."""
    token = fixtures.tokens[actor_for(op.method.upper(), op.path)]
    headers = {"Authorization": f"Bearer {token}"}

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the case as sent
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=cases(op, fixtures, mode))
    def send(case) -> None:
        response = case.call_and_validate(
            base_url=base_url, headers=headers, checks=CHECKS, timeout=30
        )
        run.statuses.setdefault(op.label, []).append(response.status_code)

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing invalid to generate for this operation (negative mode)
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
        run.failures.append(f"{op.label} [{mode.value}]: {exc}")


def run_all(schema, fixtures: Fixtures, base_url: str) -> Run:  # type: ignore[no-untyped-def]
    run = Run()
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == f"{API}/stream":
            continue  # a WebSocket upgrade, not a request-response operation
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(op, fixtures, base_url, mode, run)
    return run


async def test_live_server_conforms_to_the_document(operation):
    """Generated requests to every operation get no 5xx and only documented, conforming answers."""
    fixtures = await populate(operation)
    schema = schemathesis.openapi.from_dict(await fetch_document(operation.server))
    started = time.monotonic()
    run = await asyncio.to_thread(run_all, schema, fixtures, operation.server.url)
    elapsed = time.monotonic() - started
    report = "\n\n".join(run.failures)
    assert not run.failures, f"{len(run.failures)} failing operations:\n\n{report}"
    web_built = await asyncio.to_thread(installed) is not None
    assert run.unreached(schema, web_built) == [], (
        "real ids should get past authentication and lookups"
    )
    assert elapsed < 240, f"the schemathesis run took {elapsed:.0f} s"
