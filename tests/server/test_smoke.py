"""The server starts on each backend and serves its basic endpoints."""

from __future__ import annotations

import pytest

from opseal.client.errors import NotMemberError, UnauthorizedError


async def test_health_ready_and_instance(server):
    """/healthz, /readyz and the instance description answer."""
    api = await server.client()
    assert (await api.request("GET", "/healthz"))["status"] == "ok"
    assert (await api.request("GET", "/readyz"))["status"] == "ready"
    assert (await api.instance()).instance_id == server.ctx.instance.instance_id


async def test_operation_is_listed_for_members_only(operation):
    """Members see the operation with their role; an outsider is refused."""
    listed = await operation.actors["customs"].api.operations()
    assert [(o.operation_id, o.role) for o in listed] == [(operation.id, "customs")]
    assert await operation.actors["outsider"].api.operations() == []
    with pytest.raises(NotMemberError):
        await operation.actors["outsider"].api.operation(operation.id)


async def test_requests_without_token_are_refused(server):
    """No token, no access."""
    api = await server.client()
    with pytest.raises(UnauthorizedError, match="missing bearer token"):
        await api.whoami()
