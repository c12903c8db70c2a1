"""The OpenAPI 3.1 document, generated from the route table and the wire types.

Schemas come from msgspec (``msgspec.json.schema_components``), so every ``Meta`` limit and
pattern of a wire type appears in the document exactly as decoding enforces it; limits an
operator configures (batch size, blob and chunk sizes) are written in from :class:`Limits`.
Request bodies are inlined in their operation; response bodies are components.

Conventions: bytes travel as unpadded base64url text; every error body is the ``Error``
schema with a code from :data:`opseal.wire.errors.ERRORS`; every operation may answer 429
(rate limit) and 500 (an internal failure, logged under the request id).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from .endpoints import ENDPOINTS, PATH_PARAMS, Endpoint, Limits, Reply
from .errors import STATUSES, Error, codes_for
from .stream import StreamError, StreamEvent, StreamIdle

__all__ = ["build_document"]

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
ALWAYS = (429, 500)
"""Statuses any operation may answer: the rate limit runs before every handler."""
TAGS = ("identity", "operations", "areas", "blobs", "receipts", "audit", "ops", "meta")
DESCRIPTION = (
    "End-to-end encrypted closed-user-group exchange. The server stores, orders, "
    "routes and audits ciphertext and metadata. Bytes are unpadded base64url. "
    'Errors are {"error": {"code", "message", "details"}}; an unknown path '
    "answers 404 not_found and a known path with another method 405 "
    "method_not_allowed. Every response carries an X-Request-Id header."
)


def build_document(limits: Limits) -> Schema:
    """The OpenAPI document for a server enforcing ``limits`` (a new dict each call)."""
    components = _components()
    paths: dict[str, Schema] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, components, limits
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "OpSeal", "version": "1", "description": DESCRIPTION},
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "token from POST /api/v1/auth/login",
                }
            },
            "schemas": {
                name: schema for name, schema in components.items() if name not in _request_names()
            },
            "responses": {status.name: _error_response(code) for code, status in STATUSES.items()},
        },
    }


def _wire_types() -> list[Any]:
    found: list[Any] = [Error, StreamEvent, StreamIdle, StreamError]
    for endpoint in ENDPOINTS:
        found += [r.body for r in endpoint.replies.values() if r.body is not None]
        found += [t for t in (endpoint.body, endpoint.query) if t is not None]
    return list(dict.fromkeys(found))


def _request_names() -> set[str]:
    return {t.__name__ for e in ENDPOINTS for t in (e.body, e.query) if t is not None}


def _components() -> dict[str, Schema]:
    _, components = msgspec.json.schema_components(_wire_types(), ref_template=REF)
    return components


def _operation(endpoint: Endpoint, components: dict[str, Schema], limits: Limits) -> Schema:
    params = _parameters(endpoint, components)
    op: Schema = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": {
            **{str(status): _reply(reply) for status, reply in endpoint.replies.items()},
            **_error_refs(endpoint, bool(params)),
        },
    }
    if params:
        op["parameters"] = params
    if endpoint.body is not None:
        schema = copy.deepcopy(components[endpoint.body.__name__])
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if not endpoint.auth:
        op["security"] = []
    if endpoint.limits is not None:
        endpoint.limits(op, limits)
    return op


def _parameters(endpoint: Endpoint, components: dict[str, Schema]) -> list[Schema]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": _schema_of(PATH_PARAMS[name])}
        for name in endpoint.path_params
    ]
    if endpoint.query is not None:
        struct = components[endpoint.query.__name__]
        required = set(struct.get("required", ()))
        params += [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in struct["properties"].items()
        ]
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "description": description, "pattern": pattern},
        }
        for name, (description, pattern) in endpoint.headers.items()
    ]
    return params


def _schema_of(type_: Any) -> Schema:
    schema = msgspec.json.schema(type_, ref_template=REF)
    schema.pop("$defs", None)
    return schema


def _reply(reply: Reply) -> Schema:
    answer: Schema = {"description": reply.description}
    if reply.headers:
        answer["headers"] = {
            name: {"description": text, "required": required, "schema": {"type": "string"}}
            for name, (text, required) in reply.headers.items()
        }
    if reply.body is not None:
        answer["content"] = {
            reply.media: {"schema": {"$ref": REF.format(name=reply.body.__name__)}}
        }
    elif reply.schema is not None:
        answer["content"] = {reply.media: {"schema": dict(reply.schema)}}
    return answer


def _error_refs(endpoint: Endpoint, has_params: bool) -> dict[str, Schema]:
    """The error statuses every request of the endpoint's kind can meet, by reference."""
    statuses = {*endpoint.errors, *ALWAYS}
    if endpoint.auth:
        statuses.add(401)
    if endpoint.body is not None:
        statuses |= {400, 413}
    if has_params:  # bad query values, and path ids holding NUL or unpaired surrogates
        statuses.add(400)
    return {
        str(status): {"$ref": f"#/components/responses/{STATUSES[status].name}"}
        for status in sorted(statuses)
    }


def _error_response(status: int) -> Schema:
    schema = {
        "allOf": [
            {"$ref": REF.format(name="Error")},
            {"properties": {"error": {"properties": {"code": {"enum": codes_for(status)}}}}},
        ]
    }
    return {
        "description": STATUSES[status].description,
        "content": {"application/json": {"schema": schema}},
    }
