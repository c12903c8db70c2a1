"""Message signatures checked ahead of the verifier, on the machine's other core (design §14).

A first sync verifies tens of thousands of Ed25519 signatures, a third of its work. While the
:class:`~opseal.client.verifier.Verifier` checks one page, :class:`DecodedPage` decodes the
next and sends each message's signature, with the signing key its sender had in the epoch
the verifier last used, to a :class:`SignatureWorker`: a child process running libsodium (a
thread would not do: it waits for the interpreter lock between signatures while the verifier
runs Python).

The verdict only spares work: the verifier still runs every check of every message in order,
and skips the signature check only if the worker verified that very signature and message
under the key the sender holds in the state the verifier opens the message with
(``open_envelope(signed_by=CheckedSignature(...))``). A refused signature, a key that changed
meanwhile, or a worker that failed mean the verifier checks the signature itself, as without
a worker, and a forgery is refused and warned about exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opseal.crypto.encoding import b64d
from opseal.crypto.envelope import CheckedSignature, Envelope
from opseal.crypto.errors import CryptoError
from opseal.wire.operations import Event

__all__ = ["ANSWER_WITHIN", "CHUNK", "Decoded", "DecodedPage", "SignatureWorker", "Signer"]

CHUNK = 16
"""Signatures per batch sent to the worker: the verifier waits for a batch, not a page, and a
small batch comes back soon after the worker starts on it (128 made a 100k sync wait ~0.6 s
longer, design §14)."""

ANSWER_WITHIN = 30.0
"""Seconds a batch may wait for its verdicts (a few pages ahead of it take a fraction of
that); past them the worker is given up and the verifier checks everything itself."""
_BUFFERED = 8 * 1024 * 1024
_BATCH = struct.Struct(">II")
_SIZE = struct.Struct(">I")


class SignatureWorker:
    """A child process that checks Ed25519 signatures in batches (``python -m
    opseal.client._signature_worker``). Any failure of the child only turns its verdicts
    into "not checked"."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        # Batches sent and not answered, in order, with their sizes: the child answers each in
        # turn; once anything goes wrong no verdict is taken any more (one batch half written
        # or answered would pair every later verdict with the wrong signature).
        self._pending: deque[tuple[asyncio.Future[bytes], int]] = deque()
        self._broken = False
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the child (it loads while the verifier works on the first page)."""
        # The child imports its code from this process's sys.path (as PYTHONPATH), and -P
        # keeps it from adding its own working directory: it runs what this process trusts,
        # no more (a worker that lied would let forgeries through).
        path = os.pathsep.join(p for p in sys.path if p)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-P", "-m", "opseal.client._signature_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path},
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
        payload = b"".join(b"".join((k, s, _SIZE.pack(len(m)), m)) for k, s, m in items)
        self._pending.append((future, len(items)))
        expiry = asyncio.get_running_loop().call_later(ANSWER_WITHIN, self._expire, future)
        future.add_done_callback(lambda _: expiry.cancel())
        try:
            proc.stdin.write(_BATCH.pack(len(items), len(payload)) + payload)
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


Signer = Callable[[str, str, int, str], "bytes | None"]
"""``(op, area, epoch, sender)`` -> the sender's public key to check a signature with."""


@dataclass
class Decoded:
    """A message entry decoded ahead of its turn, and what the worker says of its signature."""

    body: bytes
    envelope: Envelope
    place: Event
    key: bytes | None = None
    """The public key its signature was sent to the worker with (None: not sent)."""
    verdicts: asyncio.Future[bytes] | None = None
    index: int = 0

    def ask(self, signer: Signer) -> bool:
        """Take the key to send the signature with from ``signer``; whether there is one."""
        header = self.envelope.header
        self.key = signer(self.place.operation_id, self.place.area, header.epoch, header.sender)
        return self.key is not None

    async def signed_by(self) -> CheckedSignature | None:
        """The signature as the worker verified it (key, signature, signed bytes), or None."""
        if self.key is None or self.verdicts is None:
            return None
        verdicts = await asyncio.shield(self.verdicts)  # shared by its batch: not cancelled
        if self.index >= len(verdicts) or verdicts[self.index] != 1:
            return None
        envelope = self.envelope
        return CheckedSignature(self.key, envelope.signature, envelope.to_be_signed())


class DecodedPage:
    """A sync page's messages that decode, by position in the page. What does not decode is
    left out: the verifier decodes it again and refuses it with the reason."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.items: dict[int, Decoded] = {}
        for n, event in enumerate(events):
            if not isinstance(event, Event) or event.kind != "message":
                continue
            try:
                body = b64d(event.body, field="body")
                self.items[n] = Decoded(body, Envelope.from_bytes(body), place=event)
            except CryptoError:
                continue
        self._sent = False
        self._tried: object = None

    def get(self, n: int) -> Decoded | None:
        return self.items.get(n)

    async def send(
        self, worker: SignatureWorker, signer: Signer, hints: object, start: int = 0
    ) -> None:
        """Send the signatures of the messages from position ``start`` on to ``worker``, each
        with the key ``signer(op, area, epoch, sender)`` names (none: left to the verifier).
        Done once: again only while no key was known, and when ``hints`` (the signer's
        knowledge) changed since."""
        if self._sent or hints == self._tried:
            return
        self._tried = hints
        batch = [item for n, item in self.items.items() if n >= start and item.ask(signer)]
        if not batch:
            return
        self._sent = True
        for first in range(0, len(batch), CHUNK):
            chunk = batch[first : first + CHUNK]
            future = await worker.check(
                [(i.key or b"", i.envelope.signature, i.envelope.to_be_signed()) for i in chunk]
            )
            for index, item in enumerate(chunk):
                item.verdicts, item.index = future, index
