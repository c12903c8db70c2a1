"""Ed25519 signatures checked in a child process, in batches, on the machine's other core.

Used where many signatures wait on one event loop: a client's first sync (design §14) and a
server's groups of single posts (design §13). A thread would not do: between two signatures
it waits for the interpreter lock while the loop runs Python. The child
(``python -m opseal.crypto._signature_worker``) answers each batch with one verdict byte per
signature. A verdict only spares work: whoever asked still checks every rule, and takes a
signature as verified only if the child verified that very signature and message under the
key it would check it with (:class:`~opseal.crypto.envelope.CheckedSignature`). Any failure of
the child turns its verdicts into "not checked", and the signatures are checked as without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from collections import deque
from collections.abc import Sequence

__all__ = ["ANSWER_WITHIN", "SignatureWorker"]

ANSWER_WITHIN = 30.0
"""Seconds a batch may wait for its verdicts (a few pages ahead of it take a fraction of
that); past them the worker is given up and the verifier checks everything itself."""
_BUFFERED = 8 * 1024 * 1024
_BATCH = struct.Struct(">II")
_SIZE = struct.Struct(">I")


_PASSED = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONHOME", "TMPDIR", "LD_LIBRARY_PATH", "SYSTEMROOT",
)  # fmt: skip


def _plain_environment() -> dict[str, str]:
    """What the child gets of this process's environment: nothing else (a server's holds its
    database URL, metrics token and object-store keys, which checking signatures never needs)."""
    return {name: os.environ[name] for name in _PASSED if name in os.environ}


class SignatureWorker:
    """A child process that checks Ed25519 signatures in batches (``python -m
    opseal.crypto._signature_worker``). Any failure of the child only turns its verdicts
    into "not checked". ``answer_within``: seconds a batch may wait for its verdicts
    (default :data:`ANSWER_WITHIN`)."""

    def __init__(self, answer_within: float | None = None) -> None:
        self._answer_within = answer_within
        self._proc: asyncio.subprocess.Process | None = None
        # Batches sent and not answered, in order, with their sizes: the child answers each in
        # turn; once anything goes wrong no verdict is taken any more (one batch half written
        # or answered would pair every later verdict with the wrong signature).
        self._pending: deque[tuple[asyncio.Future[bytes], int]] = deque()
        self._broken = False
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the child (it loads while the verifier works on the first page)."""
        # The child imports its code from this process's sys.path (as PYTHONPATH); -P keeps
        # it from adding its own working directory and -s from adding the user's site
        # folder: it runs what this process trusts, no more (a worker that lied would let
        # forgeries through).
        path = os.pathsep.join(p for p in sys.path if p)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-s", "-m", "opseal.crypto._signature_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env={**_plain_environment(), "PYTHONPATH": path},
            )  # fmt: skip
        except (OSError, ValueError, TypeError, NotImplementedError, RuntimeError):
            # No interpreter to run, or an event loop without subprocesses: no worker.
            self._proc = None
            return
        assert self._proc.stdin is not None
        # A page or two waits in the pipe while the child works: the verifier must not wait
        # for the child to take a batch before it goes on with its own checks.
        self._proc.stdin.transport.set_write_buffer_limits(high=_BUFFERED)
        self._reader = asyncio.ensure_future(self._read())

    @property
    def working(self) -> bool:
        """Whether the child runs and its verdicts are taken."""
        proc = self._proc
        return not self._broken and proc is not None and proc.returncode is None

    async def check(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> asyncio.Future[bytes]:
        """Send ``(public key, signature, message)`` items; the future gives one byte per item,
        1 if the signature verifies (empty if the worker is gone)."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        proc = self._proc
        if self._broken or proc is None or proc.stdin is None or proc.stdin.is_closing():
            future.set_result(b"")
            return future
        if any(len(k) != 32 or len(s) != 64 for k, s, _ in items):
            raise ValueError("a signature check needs a 32-byte key and a 64-byte signature")
        # The whole frame is made before the batch is queued: a batch queued and not sent would
        # pair every later verdict with the batch before it.
        payload = b"".join(b"".join((k, s, _SIZE.pack(len(m)), m)) for k, s, m in items)
        frame = _BATCH.pack(len(items), len(payload)) + payload
        self._pending.append((future, len(items)))
        within = ANSWER_WITHIN if self._answer_within is None else self._answer_within
        expiry = asyncio.get_running_loop().call_later(within, self._expire, future)
        future.add_done_callback(lambda _: expiry.cancel())
        try:
            proc.stdin.write(frame)  # all of it, or the child is given up
        except (OSError, RuntimeError):  # the child is gone
            self._fail()
            return future
        except BaseException:  # the batch is queued but perhaps not sent: no more verdicts
            self._fail()
            raise
        try:
            await proc.stdin.drain()
        except (OSError, RuntimeError):  # the child is gone
            self._fail()
        return future

    def _expire(self, future: asyncio.Future[bytes]) -> None:
        if not future.done():  # a child that hangs must not hang the sync
            self._fail()

    def _fail(self) -> None:
        """Take no verdict any more: what is pending is "not checked". The child is killed, so
        that a write waiting for it to read (a stopped child, a full pipe) fails at once."""
        self._broken = True
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_result(b"")

    async def _read(self) -> None:
        assert self._proc is not None
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            while True:
                count, size = _BATCH.unpack(await stdout.readexactly(_BATCH.size))
                verdicts = await stdout.readexactly(size)
                future, sent = self._pending.popleft()
                if not count == size == sent:
                    break
                if not future.done():
                    future.set_result(verdicts)
        except (asyncio.IncompleteReadError, OSError, IndexError, struct.error):
            pass
        finally:
            self._fail()

    async def close(self) -> None:
        """Stop the child (it exits when its input closes)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
