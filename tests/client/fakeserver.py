"""An in-process fake server for :class:`~opseal.client.api.ApiClient`, plugged in through the
transport seam (:class:`~opseal.client.transport.Transport`).

It matches each request against the route table of :mod:`opseal.wire.endpoints`, records the
endpoint's name, and answers with a well-formed sample of the endpoint's documented reply
type — built from the type itself (:func:`sample`) — unless a test set another answer for
that endpoint. It knows nothing of the API's rules: it exists to feed the client answers of a
chosen shape, such as a hostile server's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import inspect

from opseal.client.transport import HttpRequest, HttpResponse
from opseal.wire.endpoints import ENDPOINTS, Endpoint
from opseal.wire.scalars import B64_PATTERN, UUID_PATTERN
from opseal.wire.stream import StreamEvent

__all__ = ["B64_SAMPLE", "Answer", "FakeServer", "sample", "sample_answer"]

B64_SAMPLE = "AAAA"
"""The sample of every base64url field (three zero bytes), so tests can find those fields."""
UUID_SAMPLE = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Answer:
    """What the fake server answers: a status and the raw body."""

    status: int
    body: bytes


def sample(kind: inspect.Type) -> Any:
    """A small well-formed value of ``kind``, as plain JSON data."""
    while isinstance(kind, inspect.Metadata):
        kind = kind.type
    if isinstance(kind, inspect.StructType):
        value = {f.encode_name: sample(f.type) for f in kind.fields}
        if kind.tag_field is not None:
            value = {kind.tag_field: kind.tag, **value}
        return value
    if isinstance(kind, inspect.UnionType):
        return sample(next(t for t in kind.types if not isinstance(t, inspect.NoneType)))
    if isinstance(kind, inspect.ListType):
        return [sample(kind.item_type)]
    if isinstance(kind, inspect.DictType):
        return {"k": sample(kind.value_type)}
    return _scalar(kind)


def _scalar(kind: inspect.Type) -> Any:
    if isinstance(kind, inspect.StrType):
        if kind.pattern == B64_PATTERN:
            return B64_SAMPLE
        if kind.pattern == UUID_PATTERN:
            return UUID_SAMPLE
        return "x" * max(kind.min_length or 1, 1)
    if isinstance(kind, inspect.BoolType):
        return True
    if isinstance(kind, inspect.IntType):
        return kind.ge if kind.ge is not None else 1
    if isinstance(kind, inspect.LiteralType):
        return kind.values[0]
    if isinstance(kind, inspect.AnyType):
        return 1
    raise AssertionError(f"no sample for {kind!r}")


def sample_answer(endpoint: Endpoint) -> tuple[int, Any]:
    """The endpoint's first documented status and a well-formed body for it (for the
    stream, a frame: a sample event)."""
    status, reply = next(iter(endpoint.replies.items()))
    if endpoint.name == "stream":
        return status, sample(inspect.type_info(StreamEvent))
    return status, sample(inspect.type_info(reply.body))


def _pattern(endpoint: Endpoint) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(endpoint.path)))


@dataclass
class FakeServer:
    """A :class:`~opseal.client.transport.Transport` answering from the route table."""

    answers: dict[str, Answer] = field(default_factory=dict)
    frames: list[bytes] | None = None
    """The stream's frames (default: one sample event)."""
    called: list[str] = field(default_factory=list)
    routes: list[tuple[Endpoint, re.Pattern[str]]] = field(
        default_factory=lambda: [(e, _pattern(e)) for e in ENDPOINTS]
    )

    def endpoint(self, request: HttpRequest) -> Endpoint:
        path = "/" + request.url.split("://", 1)[1].partition("/")[2]
        for endpoint, pattern in self.routes:
            if endpoint.method == request.method and pattern.fullmatch(path):
                return endpoint
        raise AssertionError(f"no endpoint for {request.method} {path}")

    async def handle(self, request: HttpRequest) -> HttpResponse:
        endpoint = self.endpoint(request)
        self.called.append(endpoint.name)
        if endpoint.name in self.answers:
            answer = self.answers[endpoint.name]
            return HttpResponse(answer.status, answer.body)
        if endpoint.name == "get_blob_data":
            return HttpResponse(200, b"ciphertext")
        status, body = sample_answer(endpoint)
        return HttpResponse(status, msgspec.json.encode(body))

    async def stream(self, request: HttpRequest) -> AsyncIterator[str]:
        self.called.append(self.endpoint(request).name)
        for frame in self.frames or [msgspec.json.encode(sample(inspect.type_info(StreamEvent)))]:
            yield frame.decode(errors="replace")

    async def close(self) -> None:
        pass
