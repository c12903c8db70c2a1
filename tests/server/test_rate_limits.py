"""Rate limits that hold (issue 12): keyed on the authenticated device or the client address,
bounded, and cheap for the audit log."""

from __future__ import annotations

import secrets
import time

import aiohttp
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from opseal.client.errors import RateLimitedError
from opseal.server.config import ConfigError, Settings
from opseal.server.http.middlewares import ANONYMOUS_AUDITS_PER_MINUTE, RateLimiter
from opseal.server.storage.tables import audit_leaves

from .conftest import enrol, start_server


@pytest.fixture
async def slow_server(settings):
    """A server allowing 60 requests a minute (a burst of 10), behind no proxy."""
    srv = await start_server(settings.replace(rate_limit_per_minute=60))
    yield srv
    for api in srv.clients:
        await api.close()
    await srv.runner.cleanup()


async def audit_size(server) -> int:
    async with server.ctx.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(audit_leaves))).scalar_one()


async def statuses(server, count: int, headers=lambda n: {}) -> list[int]:
    out = []
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            async with session.get(f"{server.url}/api/v1/whoami", headers=headers(n)) as response:
                out.append(response.status)
    return out


def limited() -> float:
    return REGISTRY.get_sample_value("opseal_rate_limited_total", {"scope": "address"}) or 0.0


async def test_random_bearer_headers_share_their_address_bucket_and_barely_touch_the_audit_log(
    slow_server,
):
    """300 requests, each with a new random bearer token, get 429 after the burst of 10; the
    429s are counted in the metrics, and the audit log grows by at most a constant."""
    size, counted = await audit_size(slow_server), limited()
    random_bearer = lambda n: {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}  # noqa: E731
    started = time.monotonic()
    seen = await statuses(slow_server, 300, random_bearer)
    elapsed = time.monotonic() - started
    passed = [s for s in seen if s != 429]
    assert set(passed) == {401}
    assert seen[:11] == [401] * 10 + [429]
    assert len(passed) <= 10 + elapsed + 1  # the burst, then one a second (60/min)
    assert limited() - counted == seen.count(429)
    assert await audit_size(slow_server) - size <= 2  # one entry per address and minute


async def test_a_logged_in_device_keeps_its_own_bucket_while_its_address_is_limited(slow_server):
    """A device with a valid token is limited on its own bucket, not on its address's, and
    its own 429s are not audited."""
    from ..crypto.conftest import World

    actor = await enrol(slow_server, World(), "fr-customs", "officer", "officer-device")
    await statuses(slow_server, 40)  # the address's anonymous bucket runs dry
    for _ in range(5):
        assert (await actor.api.whoami()).device_id == "officer-device"
    size, refused = await audit_size(slow_server), 0
    for _ in range(30):
        try:
            await actor.api.whoami()
        except RateLimitedError:
            refused += 1
    assert refused >= 10
    assert await audit_size(slow_server) == size


async def test_forwarded_for_counts_only_from_a_trusted_proxy(settings):
    """Behind a configured proxy each forwarded client has its own bucket; from any other
    peer the header is ignored and cannot buy a fresh bucket."""
    forwarded = lambda n: {"X-Forwarded-For": f"203.0.113.{n}"}  # noqa: E731
    for trusted, expected in (("127.0.0.1/32", []), ("", "limited")):
        srv = await start_server(
            settings.replace(rate_limit_per_minute=60, trusted_proxies=trusted)
        )
        try:
            seen = await statuses(srv, 40, forwarded)
        finally:
            await srv.runner.cleanup()
        if expected == []:
            assert 429 not in seen
        else:
            assert seen[-20:] == [429] * 20


async def test_a_stranger_rotating_addresses_in_one_network_barely_touches_the_audit_log(
    settings,
):
    """Unauthenticated refusals from 50 addresses of one IPv6 /64, or of one IPv4 /24, are
    audited once per network and minute, not once per address."""
    srv = await start_server(settings.replace(trusted_proxies="127.0.0.1/32"))
    try:
        for network in ("2001:db8:0:1::{:x}", "198.51.100.{}"):
            size = await audit_size(srv)
            seen = await statuses(
                srv, 50, lambda n, net=network: {**_bearer(), "X-Forwarded-For": net.format(n + 1)}
            )
            assert set(seen) == {401}
            assert await audit_size(srv) - size <= 2  # a minute may turn over once
    finally:
        await srv.runner.cleanup()


async def test_strangers_in_many_networks_are_audited_up_to_a_global_cap(settings):
    """Unauthenticated refusals from many different networks are audited at most
    ANONYMOUS_AUDITS_PER_MINUTE times a minute in all."""
    count = 2 * ANONYMOUS_AUDITS_PER_MINUTE + 30
    srv = await start_server(settings.replace(trusted_proxies="127.0.0.1/32"))
    try:
        size = await audit_size(srv)
        seen = await statuses(
            srv, count, lambda n: {**_bearer(), "X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"}
        )
        assert set(seen) == {401}
        assert await audit_size(srv) - size <= 2 * ANONYMOUS_AUDITS_PER_MINUTE  # two minutes
    finally:
        await srv.runner.cleanup()


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}


def test_the_bucket_map_forgets_the_least_recently_used_key_instead_of_clearing():
    """A flood of new keys evicts idle buckets one by one; an active, empty bucket stays empty."""
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0], max_keys=100)
    while limiter.allow("busy"):
        pass
    for n in range(1000):
        limiter.allow(f"flood-{n}")
        if n % 50 == 0:
            assert not limiter.allow("busy")
    assert len(limiter.buckets) == 100
    assert "flood-0" not in limiter.buckets


def test_trusted_proxies_must_be_addresses_or_networks():
    """A bad trusted_proxies value stops the server with a message naming the setting."""
    assert Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_networks[1].prefixlen == 128
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Settings(trusted_proxies="proxy.example")
