"""The error-code table is the one source both error families are checked against."""

from __future__ import annotations

import inspect

from opseal.client import errors as client_errors
from opseal.server import errors as server_errors
from opseal.server.config import Settings
from opseal.server.http.openapi import build_document
from opseal.wire.errors import ERRORS, STATUSES


def server_classes() -> list[type[server_errors.OpSealError]]:
    return [
        cls
        for _, cls in inspect.getmembers(server_errors, inspect.isclass)
        if issubclass(cls, server_errors.OpSealError)
    ]


def test_every_server_error_code_is_in_the_table_with_its_status():
    """Each server error class's code is a table code travelling with the same HTTP status."""
    for cls in server_classes():
        assert cls.code in ERRORS, cls
        assert ERRORS[cls.code].status == cls.status, cls


def test_every_table_code_has_a_server_error_class():
    """The server can raise every code of the table."""
    assert {cls.code for cls in server_classes()} == set(ERRORS)


def test_client_registry_covers_every_table_code():
    """The client maps every table code to its own exception class, not the fallback."""
    for code in ERRORS:
        error = client_errors.error_for(
            ERRORS[code].status, {"error": {"code": code, "message": "m", "details": {}}}
        )
        assert error.code == code, code
        assert error.status == ERRORS[code].status


def test_client_registry_knows_no_code_outside_the_table():
    """Every code the client registry knows is a table code."""
    assert set(client_errors._BY_CODE) <= set(ERRORS)


def test_every_error_status_has_a_documented_response():
    """Each status of the table has a named response listing exactly its codes."""
    document = build_document(Settings())
    responses = document["components"]["responses"]
    for status in {entry.status for entry in ERRORS.values()}:
        response = responses[STATUSES[status].name]
        enum = response["content"]["application/json"]["schema"]["allOf"][1]
        codes = enum["properties"]["error"]["properties"]["code"]["enum"]
        assert set(codes) == {c for c, e in ERRORS.items() if e.status == status}
