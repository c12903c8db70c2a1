"""``SyncClient``: :class:`~opseal.client.client.Client` for scripts that are not async.

A national system's upload script wants ``client.post_seizures(op, records)``, not an event
loop. ``SyncClient`` owns a private event loop running in a background thread; the async client
lives on that loop (its local store is a SQLite connection, which must stay on one thread), and
each public method of :class:`Client` is mirrored here by a generated wrapper that hands the call
to the loop and waits for its result. Plain methods run on the loop thread too, so every use of
the store happens on the thread that opened it.

    with SyncClient.open(Profile("ncen"), passphrase) as client:
        client.sync()
        ids = client.post_seizures("op-stop-v", records)

Wrappers are generated from :class:`Client` when this module is imported, so a method added to
the async client is available here without a change. Callbacks given to a method (progress,
handlers) are called on the loop thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .client import Client
from .errors import ClientError
from .profile import Profile, ProfileInfo

__all__ = ["SyncClient"]

T = TypeVar("T")

# Constructors and lifetime are written by hand below; the async API client is not mirrored;
# everything else is generated.
_NOT_WRAPPED = frozenset({"open", "enrol", "close", "api"})


class _LoopThread:
    """An event loop running forever in a daemon thread, fed from other threads."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="opseal-sync-client", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it; Ctrl-C cancels it there as well."""
        if self.loop.is_closed():
            coro.close()
            raise ClientError("this SyncClient is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a SyncClient method was called from its own loop (a callback?)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a plain function on the loop thread (where the client's store lives)."""

        async def on_loop() -> T:
            return fn(*args, **kwargs)

        return self.run(on_loop())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.loop.shutdown_asyncgens())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncClient:
    """A logged-in device, synchronously. Use ``with``; see the module docstring."""

    def __init__(self, client: Client, loop: _LoopThread) -> None:
        self._client, self._loop = client, loop

    @classmethod
    def open(cls, profile: Profile, passphrase: str, *, login: bool = True) -> SyncClient:
        """Open an enrolled profile (see :meth:`Client.open`)."""

        async def opener() -> Client:
            client = await Client.open(profile, passphrase, login=False)
            try:
                if login:
                    await client.login()
            except BaseException:
                await client.close()  # a refused or failed login leaves nothing open
                raise
            return client

        return cls._start(opener)

    @classmethod
    def enrol(cls, profile: Profile, **kwargs: Any) -> SyncClient:
        """Enrol this device with a one-time code (see :meth:`Client.enrol` for the keywords)."""
        return cls._start(lambda: Client.enrol(profile, **kwargs))

    @classmethod
    def _start(cls, opener: Callable[[], Coroutine[Any, Any, Client]]) -> SyncClient:
        loop = _LoopThread()
        try:
            client = loop.run(opener())
        except BaseException:
            loop.stop()
            raise
        return cls(client, loop)

    @property
    def aio(self) -> Client:
        """The async client underneath (use it only on :attr:`loop`)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop.loop

    @property
    def profile(self) -> Profile:
        return self._client.profile

    @property
    def info(self) -> ProfileInfo:
        return self._client.info

    def close(self) -> None:
        """Save the client's state, close its connections and stop the loop thread. Idempotent."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    if TYPE_CHECKING:  # the generated wrappers below are invisible to type checkers

        def __getattr__(self, name: str) -> Any: ...


def _coroutine_wrapper(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: SyncClient, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run(getattr(self._client, name)(*args, **kwargs))

    return method


def _asyncgen_wrapper(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: SyncClient, *args: Any, **kwargs: Any) -> Iterator[Any]:
        agen: AsyncIterator[Any] = self._loop.call(getattr(self._client, name), *args, **kwargs)

        async def step() -> Any:
            return await agen.__anext__()

        while True:
            try:
                yield self._loop.run(step())
            except StopAsyncIteration:
                return

    return method


def _plain_wrapper(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: SyncClient, *args: Any, **kwargs: Any) -> Any:
        return self._loop.call(getattr(self._client, name), *args, **kwargs)

    return method


def _property_wrapper(name: str, source: property) -> property:
    return property(lambda self: getattr(self._client, name), doc=source.__doc__)


def _wrapper(name: str, attr: Any) -> Any:
    """The SyncClient counterpart of ``Client.<name>``, or None for what is not mirrored."""
    if isinstance(attr, property):
        return _property_wrapper(name, attr)
    if isinstance(attr, (staticmethod, classmethod)) or not inspect.isfunction(attr):
        return None
    if inspect.iscoroutinefunction(attr):
        return _coroutine_wrapper(name, attr)
    if inspect.isasyncgenfunction(attr):
        return _asyncgen_wrapper(name, attr)
    return _plain_wrapper(name, attr)


def _mirror(target: type, source: type) -> None:
    for name, attr in vars(source).items():
        if name.startswith("_") or name in _NOT_WRAPPED or name in vars(target):
            continue
        wrapper = _wrapper(name, attr)
        if wrapper is not None:
            setattr(target, name, wrapper)


_mirror(SyncClient, Client)
