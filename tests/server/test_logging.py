"""The server's log lines: one JSON object per line, whatever a field holds."""

from __future__ import annotations

import dataclasses
import io
import json
import logging

import pytest
import structlog

from opseal.server.logging import configure_logging


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@pytest.fixture
def json_logs(monkeypatch):
    """The server's configuration, its lines written to a buffer."""
    monkeypatch.setattr(logging, "basicConfig", lambda **_: None)  # process-wide otherwise
    configure_logging("info", json=True)
    lines = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(lines))
    yield structlog.get_logger("test"), lines
    structlog.reset_defaults()


def test_a_log_line_is_one_json_object_with_its_fields(json_logs):
    """A request's line parses back to its fields (names in any script, numbers as numbers,
    the request id bound for the request); what JSON cannot hold is written as its repr."""
    log, lines = json_logs
    structlog.contextvars.bind_contextvars(request_id="abc123")
    try:
        log.info("request", route="/api/v1/x", status=201, ms=1.5, device="dé-1", odd=_Opaque())
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    [line] = lines.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "request"
    assert entry["level"] == "info"
    assert entry["request_id"] == "abc123"
    assert (entry["route"], entry["status"], entry["ms"]) == ("/api/v1/x", 201, 1.5)
    assert entry["device"] == "dé-1"
    assert entry["odd"] == "<opaque>"
    assert entry["timestamp"].endswith("Z")


def test_what_json_cannot_hold_is_written_as_repr_and_secrets_of_dataclasses_stay_out(json_logs):
    """A value with secret fields hidden from its ``repr`` is logged as that ``repr``, not
    field by field; a string with a lone surrogate (from a decoded body) still gives a line."""
    log, lines = json_logs

    @dataclasses.dataclass
    class Settingsish:
        name: str
        token: str = dataclasses.field(repr=False)

    log.error("odd values", settings=Settingsish("node-1", "s3cret-token"), text="a\ud800b")
    [line] = lines.getvalue().splitlines()
    assert "s3cret-token" not in line
    entry = json.loads(line)
    assert entry["settings"] == repr(Settingsish("node-1", "x"))
    assert entry["text"] == "a\ud800b"
