"""Message signatures checked ahead of the verifier, on the machine's other core (design §14).

A first sync verifies tens of thousands of Ed25519 signatures, a third of its work. While the
:class:`~opseal.client.verifier.Verifier` checks one page, :class:`DecodedPage` decodes the
next and sends each message's signature, with the signing key its sender had in the epoch
the verifier last used, to a :class:`~opseal.crypto.signature_worker.SignatureWorker`: a child
process running libsodium (a thread would not do: it waits for the interpreter lock between
signatures while the verifier runs Python).

The verdict only spares work: the verifier still runs every check of every message in order,
and skips the signature check only if the worker verified that very signature and message
under the key the sender holds in the state the verifier opens the message with
(``open_envelope(signed_by=CheckedSignature(...))``). A refused signature, a key that changed
meanwhile, or a worker that failed mean the verifier checks the signature itself, as without
a worker, and a forgery is refused and warned about exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opseal.crypto.encoding import b64d
from opseal.crypto.envelope import CheckedSignature, Envelope
from opseal.crypto.errors import CryptoError
from opseal.crypto.signature_worker import SignatureWorker
from opseal.wire.operations import Event

__all__ = ["CHUNK", "Decoded", "DecodedPage", "Signer"]

CHUNK = 16
"""Signatures per batch sent to the worker: the verifier waits for a batch, not a page, and a
small batch comes back soon after the worker starts on it (128 made a 100k sync wait ~0.6 s
longer, design §14)."""

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
