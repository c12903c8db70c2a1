"""``SyncClient`` against the real server, and the client package's public surface.

A script calls ``SyncClient`` from a thread without an event loop; the tests run such scripts
in a worker thread so the test's own loop keeps serving the in-process server.
"""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest

import opseal.client
from opseal.client import Client, ClientError, SyncClient, TransportError
from opseal.client.profile import Profile
from opseal.crypto.keys import SigningKey
from opseal.server.services import instance as admin

from .conftest import FAST, PASSPHRASE


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, attr in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(attr)
    }


def test_every_public_client_method_has_a_synchronous_twin():
    """SyncClient offers each public Client method, with its docstring, and none is a coroutine."""
    assert {"open", "enrol", "close", "__enter__", "__exit__"} <= set(dir(SyncClient))
    for name in (public_methods(Client) | {"device_id", "org_id"}) - {"open", "enrol", "close"}:
        twin = getattr(SyncClient, name)
        assert not inspect.iscoroutinefunction(twin), name
        assert twin.__doc__ == getattr(Client, name).__doc__, name


def test_the_package_exports_exactly_its_public_surface():
    """`opseal.client.__all__` is sorted, resolves, and holds both clients and the errors,
    every one of which a caller can catch as ClientError."""
    assert opseal.client.__all__ == sorted(opseal.client.__all__)
    for name in opseal.client.__all__:
        assert getattr(opseal.client, name) is not None
    assert {"Client", "SyncClient", "ClientError", "TransportError", "ApiError"} <= set(
        opseal.client.__all__
    )
    errors = [n for n in opseal.client.__all__ if n.endswith(("Error", "Warning", "Refused"))]
    assert all(issubclass(getattr(opseal.client, n), ClientError) for n in errors)


async def test_a_script_posts_and_reads_through_sync_client(onboarded):
    """A script without asyncio posts a seizure and reads it back; the others verify it."""
    op = onboarded.operation_id
    await onboarded.clients["fr-customs"].close()  # the script takes over this profile
    profile = Profile("fr-customs-device", onboarded.home)
    threads: set[str] = set()

    def script() -> tuple[str, list[str], str]:
        with SyncClient.open(profile, PASSPHRASE) as client:
            client.sync()
            queued = client.enqueue(op, "seizures", [("seizure", {"record_id": "FR-9"})])
            threads.add(threading.current_thread().name)
            sent = client.flush(progress=lambda n: threads.add(threading.current_thread().name))
            assert sent == 1
            posted = client.post(op, "seizures", "text", {"text": "40 boxes"})
            client.sync()
            seen = [m.message_id for m in client.read(op, "seizures")]
            assert client.warnings() == []
        with pytest.raises(ClientError, match="closed"):
            client.read(op)
        return queued[0], seen, posted

    queued, seen, posted = await asyncio.to_thread(script)
    assert seen == [queued, posted]
    assert "opseal-sync-client" in threads  # callbacks run on the client's own loop thread
    reopened = await Client.open(profile, PASSPHRASE)
    onboarded.clients["fr-customs"] = reopened  # closed by the fixture
    de = onboarded.clients["de-customs"]
    await de.sync()
    assert [m.message_id for m in de.read(op, "seizures")] == [queued, posted]


async def test_sync_client_enrols_and_reports_typed_errors(server, tmp_path):
    """SyncClient.enrol registers a device; failures arrive as the client's typed errors and
    leave no loop thread behind."""
    await admin.create_organisation(server.ctx, "nl-customs", "Dutch Customs", "customs")
    code = await admin.create_enrolment_code(server.ctx, "nl-customs")
    profile = Profile("ncen", tmp_path)

    def script() -> tuple[str, str]:
        with SyncClient.enrol(
            profile,
            server=server.url,
            code=code,
            passphrase=PASSPHRASE,
            root=SigningKey.generate(),
            org_id="nl-customs",
            user_id="ncen",
            device_id="ncen-1",
            user_kind="service",
            params=FAST,
        ) as client:
            with pytest.raises(ClientError, match="not pinned"):
                client.charter("op-unknown")
            return client.device_id, client.info.user_kind

    assert await asyncio.to_thread(script) == ("ncen-1", "service")
    info = await asyncio.to_thread(profile.info)
    info.server = "http://127.0.0.1:1"  # nothing listens there
    await asyncio.to_thread(profile.save_info, info)
    with pytest.raises(TransportError):
        await asyncio.to_thread(SyncClient.open, profile, PASSPHRASE)
    assert not [t for t in threading.enumerate() if t.name == "opseal-sync-client"]


async def test_a_failed_open_leaves_no_thread_behind(tmp_path):
    """Opening a profile that does not exist raises, and stops the loop thread it started."""
    with pytest.raises(ClientError, match="no profile"):
        await asyncio.to_thread(SyncClient.open, Profile("missing", tmp_path), PASSPHRASE)
    assert not [t for t in threading.enumerate() if t.name == "opseal-sync-client"]
