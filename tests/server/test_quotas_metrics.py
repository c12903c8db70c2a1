"""Blob quotas per organisation and operation, and who may read /metrics (issue 12)."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from opseal.client.errors import PayloadTooLargeError
from opseal.server.config import ConfigError, Settings
from opseal.server.services.blobs import bytes_held

from .conftest import start_server
from .helpers import make_area

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def settings(database_url) -> Settings:
    """Small quotas: 1000 bytes per organisation, 1200 per operation."""
    return Settings(
        database_url=database_url,
        rate_limit_per_minute=100_000,
        max_org_blob_bytes=1000,
        max_operation_blob_bytes=1200,
    )


async def _declare(operation, who: str, size: int) -> str:
    api = operation.actors[who].api
    digest = hashlib.sha256(b"x" * size).digest()
    return (await api.create_blob(operation.id, "seizures", size, digest)).blob_id


async def test_blob_quotas_per_organisation_and_operation_answer_413(operation):
    """A declaration past the organisation's or the operation's quota is refused with 413
    naming the quota, and stores nothing; within both it is accepted."""
    await make_area(operation, "seizures", ["coordinator", "customs", "customs2"])
    await _declare(operation, "customs", 600)

    with pytest.raises(PayloadTooLargeError, match="organisation quota of 1000 bytes") as org:
        await _declare(operation, "customs", 500)
    assert org.value.details == {"quota": 1000, "used": 600, "scope": "organisation"}
    with pytest.raises(PayloadTooLargeError, match="operation quota of 1200 bytes") as op:
        await _declare(operation, "customs2", 700)
    assert op.value.details["quota"] == 1200
    assert await bytes_held(operation.server.ctx, operation.id, "fr-customs") == (600, 600)

    await _declare(operation, "customs2", 600)  # fits both: 600 of 1000 and 1200 of 1200
    assert await bytes_held(operation.server.ctx, operation.id, "de-customs") == (1200, 600)


async def _get_metrics(url: str, headers: dict[str, str] | None = None) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/metrics", headers=headers or {}) as answer,
    ):
        body = await answer.read()
        if answer.status == 200:  # the scrape-time gauges too: no checkpoint signed yet
            assert b"\nopseal_audit_checkpoint_age_seconds -1.0\n" in body
        return answer.status


async def test_metrics_behind_a_token_refuse_without_it(settings):
    """With metrics_token set, /metrics answers 401 without the token or with another, and
    200 with it."""
    server = await start_server(settings.replace(metrics_token=TOKEN))
    try:
        assert await _get_metrics(server.url) == 401
        assert await _get_metrics(server.url, {"Authorization": "Bearer wrong-token"}) == 401
        assert await _get_metrics(server.url, {"Authorization": f"Bearer {TOKEN}"}) == 200
    finally:
        await server.runner.cleanup()


async def test_metrics_without_a_token_answer_local_peers_only(server):
    """Without metrics_token, /metrics answers a loopback peer, and refuses a request a
    proxy forwarded (403)."""
    assert await _get_metrics(server.url) == 200
    assert await _get_metrics(server.url, {"X-Forwarded-For": "203.0.113.9"}) == 403


def test_short_metrics_token_is_refused_at_start():
    """A metrics token shorter than 16 characters stops the server at start, naming it."""
    with pytest.raises(ConfigError, match="metrics_token"):
        Settings(metrics_token="short")
    assert TOKEN not in repr(Settings(metrics_token=TOKEN))
