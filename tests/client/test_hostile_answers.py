"""A hostile server's structurally wrong answers, endpoint by endpoint: the client raises a typed
error (:class:`MalformedAnswerError`), never a ``KeyError``, ``TypeError`` or msgspec's own.

The endpoints come from the route table (:data:`opseal.wire.endpoints.ENDPOINTS`); a test fails
when an endpoint is neither called here nor listed with the reason it is not, and when
``ApiClient`` names an endpoint this file does not call. The answers go through the transport
seam, from an in-process fake server (:mod:`.fakeserver`).
"""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from opseal.client import api as api_module
from opseal.client.api import ApiClient
from opseal.client.errors import ClientError, MalformedAnswerError
from opseal.crypto.keys import SigningKey
from opseal.wire.endpoints import ENDPOINTS, by_name

from .fakeserver import B64_SAMPLE, Answer, FakeServer, sample_answer

Call = Callable[[ApiClient], Awaitable[Any]]
KEY = SigningKey.generate()


async def _stream(api: ApiClient) -> list[Any]:
    return [message async for message in api.stream("")]


CALLS: dict[str, Call] = {
    "get_instance": lambda api: api.instance(),
    "enrol": lambda api: api.enrol("code", b"user", b"device", b"root"),
    "auth_challenge": lambda api: api.login("instance", "device", KEY),
    "auth_login": lambda api: api.login("instance", "device", KEY),
    "auth_logout": lambda api: api.logout(),
    "whoami": lambda api: api.whoami(),
    "get_org": lambda api: api.organisation("org"),
    "post_user": lambda api: api.register_user("org", b"cert"),
    "post_device": lambda api: api.register_device("org", b"cert"),
    "post_revocation": lambda api: api.revoke("org", b"statement"),
    "post_enrolment_code": lambda api: api.issue_enrolment_code("org", bytes(32), 1, b"sig"),
    "get_revocations": lambda api: api.revocations(),
    "get_device": lambda api: api.device("device"),
    "post_operation": lambda api: api.create_operation(b"charter"),
    "get_operations": lambda api: api.operations(),
    "get_operation": lambda api: api.operation("op"),
    "get_charter": lambda api: api.charter_versions("op"),
    "post_charter": lambda api: api.publish_charter("op", b"charter"),
    "post_phase": lambda api: api.set_phase("op", "active"),
    "post_key_package": lambda api: api.post_key_package("op", "area", b"package"),
    "get_key_packages": lambda api: api.key_packages("op", "area"),
    "post_commit": lambda api: api.post_commit("op", "area", b"commit"),
    "get_commits": lambda api: api.commits("op", "area"),
    "post_message": lambda api: api.post_message("op", "area", b"envelope"),
    "post_batch": lambda api: api.post_batch("op", "area", [b"envelope"]),
    "get_events": lambda api: api.events("op", "area"),
    "get_sync": lambda api: api.sync(),
    "stream": _stream,
    "post_blob": lambda api: api.create_blob("op", "area", 10, bytes(32)),
    "put_blob_chunk": lambda api: api.put_blob_chunk(SOME_UUID, 0, b"chunk"),
    "get_blob": lambda api: api.blob(SOME_UUID),
    "post_receipt": lambda api: api.post_receipt(b"receipt"),
    "get_receipts": lambda api: api.receipts("op", "area", "device", SOME_UUID),
    "get_checkpoint": lambda api: api.audit_checkpoint(),
    "get_checkpoint_at": lambda api: api.audit_checkpoint(5),
    "get_entries": lambda api: api.audit_entries(0, 1),
    "get_inclusion_proof": lambda api: api.audit_inclusion_proof(0, 1),
    "post_declaration": lambda api: api.declare("export", "op", 1, include_personal=True),
    "get_consistency_proof": lambda api: api.audit_consistency_proof(1, 2),
}
"""How the client calls each endpoint whose answer it decodes."""
SOME_UUID = "00000000-0000-4000-8000-000000000001"

UNSTRUCTURED = {
    # Raw ciphertext: any bytes are structurally fine; the attachments part checks them
    # against the signed size and hashes (AttachmentRefused, test_malicious).
    "get_blob_data": lambda api: api.download_blob(SOME_UUID),
}
NOT_CALLED = {
    # Operations endpoints for probes, Prometheus and the document: the client never asks.
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    # The web app's files: browsers load them; `opseal web verify` fetches them as bytes
    # (client/webcheck.py, tested in tests/web/test_serving.py), not through the API client.
    "web_index",
    "web_js",
    "web_css",
    "web_config",
}


def _mutations(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Structurally wrong variants of a well-formed JSON ``value``, each with its name.

    A free-form map (the sample's ``{"k": ...}``, e.g. an audit entry's metadata) has no
    structure to break, so only structures are taken apart.
    """
    if isinstance(value, dict) and set(value) != {"k"}:
        yield f"{path or 'answer'}: a list instead of an object", [value]
        yield f"{path or 'answer'}: an unknown field", {**value, "surprise": 1}
        for name in value:
            inner = f"{path}.{name}" if path else name
            yield f"{inner}: removed", {k: v for k, v in value.items() if k != name}
            for label, wrong in _wrong_values(value[name]):
                yield f"{inner}: {label}", {**value, name: wrong}
            for label, variant in _mutations(value[name], inner):
                yield label, {**value, name: variant}
    elif isinstance(value, list) and value:
        for label, variant in _mutations(value[0], f"{path}[0]"):
            yield label, [variant, *value[1:]]


def _wrong_values(value: Any) -> Iterator[tuple[str, Any]]:
    """Values of the wrong JSON type for ``value``'s field, and bad base64url text."""
    if isinstance(value, str):
        yield "a number instead of text", 12345
        if value == B64_SAMPLE:
            yield "base64url of an impossible length", "AAAAA"
            yield "non-canonical base64url", "AB"
            yield "padded standard base64", "A+/="
    elif isinstance(value, (bool, int)):
        yield "text instead of a number or boolean", "x"
    elif isinstance(value, list):
        yield "an object instead of a list", {"k": 1}
    elif isinstance(value, dict):
        yield "a list instead of an object", [1]
    else:
        yield "a list instead of a scalar", []


def _answers(name: str) -> Iterator[tuple[str, int, bytes]]:
    """Every hostile answer for endpoint ``name``: (what is wrong, status, body)."""
    status, body = sample_answer(by_name(name))
    yield "garbage instead of JSON", status, b"{not json"
    yield "an empty body", status, b""
    if name != "stream":  # frames have no status
        yield "an undocumented success status", 299, msgspec.json.encode(body)
    for label, variant in _mutations(body):
        yield label, status, msgspec.json.encode(variant)


async def _run(fake: FakeServer, call: Call) -> Any:
    async with ApiClient("http://fake", transport=fake) as api:
        return await call(api)


def test_every_endpoint_of_the_table_is_covered_once():
    """Each endpoint of the route table is called here, unstructured, or never called."""
    groups = [set(CALLS), set(UNSTRUCTURED), NOT_CALLED]
    assert set().union(*groups) == {e.name for e in ENDPOINTS}
    assert sum(map(len, groups)) == len(ENDPOINTS)


def test_every_endpoint_the_api_client_names_is_called_here():
    """The endpoint names written in client/api.py are exactly those this file calls."""
    tree = ast.parse(Path(api_module.__file__).read_text())
    names = {e.name for e in ENDPOINTS}
    used = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
    assert used == set(CALLS) | set(UNSTRUCTURED)


@pytest.mark.parametrize("name", sorted({**CALLS, **UNSTRUCTURED}))
async def test_a_well_formed_answer_is_decoded_from_its_endpoint(name):
    """With well-formed answers, each call reaches its own endpoint and returns a value."""
    fake = FakeServer()
    result = await _run(fake, {**CALLS, **UNSTRUCTURED}[name])
    assert name in fake.called
    assert result is not None or name == "auth_logout"


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_structurally_wrong_answer_is_a_malformed_answer_error(name):
    """Every wrong shape of the endpoint's answer (a field removed, of the wrong type, bad
    base64url, a list for an object, garbage) raises MalformedAnswerError naming no value."""
    escaped = []
    for label, status, body in _answers(name):
        fake = FakeServer()
        if name == "stream":
            fake.frames = [body]
        else:
            fake.answers[name] = Answer(status, body)
        try:
            await _run(fake, CALLS[name])
        except MalformedAnswerError as exc:
            if "12345" in str(exc):
                escaped.append(f"{label}: the message quotes the value: {exc}")
            continue
        except Exception as exc:  # what escapes is the finding
            escaped.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        escaped.append(f"{label}: accepted")
    assert not escaped, "\n".join(escaped)


# A refused stream handshake has no body: the transport types it, so "stream" is not here.
@pytest.mark.parametrize("name", sorted(set({**CALLS, **UNSTRUCTURED}) - {"stream"}))
@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b'{"error": []}', b"[1]"])
async def test_a_refusal_of_any_shape_is_a_typed_error(name, body):
    """An error status with a body that is not the API's error shape is still a ClientError."""
    fake = FakeServer(answers={name: Answer(502, body)})
    with pytest.raises(ClientError):
        await _run(fake, {**CALLS, **UNSTRUCTURED}[name])


def test_mutations_are_really_wrong():
    """The hostile variants include removed fields and bad base64url for a sync page."""
    _, body = sample_answer(by_name("get_sync"))
    labels = {label for label, _ in _mutations(body)}
    assert "cursor: removed" in labels
    assert "events[0].body: non-canonical base64url" in labels
