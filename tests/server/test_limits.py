"""Limits: request rate per account and batch size answer with clear refusals."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from opseal.client.errors import PayloadTooLargeError, RateLimitedError
from opseal.server.storage.tables import audit_leaves

from .conftest import start_server


@pytest.fixture
async def slow_server(settings):
    """A server allowing 60 requests a minute (a burst of 10)."""
    srv = await start_server(settings.replace(rate_limit_per_minute=60, max_batch=3))
    yield srv
    for api in srv.clients:
        await api.close()
    await srv.runner.cleanup()


async def test_too_many_requests_get_429_counted_in_metrics_not_audited(slow_server):
    """Past its burst a caller gets rate_limited; the refusal is counted in the metrics and
    kept out of the audit log (issue 12: an anonymous flood must not grow the log)."""
    api = await slow_server.client()
    outcomes = []
    for _ in range(50):
        try:
            await api.instance()
            outcomes.append("ok")
        except RateLimitedError as error:
            outcomes.append(str(error))
    assert outcomes[:10] == ["ok"] * 10
    assert "rate_limited: too many requests: slow down and retry in a few seconds" in outcomes
    async with slow_server.ctx.engine.connect() as conn:
        entries = [row[0] for row in await conn.execute(select(audit_leaves.c.entry))]
    assert not any(b'"code":"rate_limited"' in entry for entry in entries)
    assert REGISTRY.get_sample_value("opseal_refusals_total", {"code": "rate_limited"}) >= 1


async def test_batches_over_the_limit_are_refused_whole(operation):
    """A batch larger than max_batch is refused with the limit in the message."""
    limit = operation.server.ctx.settings.max_batch
    with pytest.raises(PayloadTooLargeError, match=f"at most {limit} per batch"):
        await operation.actors["customs"].api.post_batch(
            operation.id, "seizures", [b"x"] * (limit + 1)
        )
