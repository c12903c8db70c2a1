"""A group's signatures checked on the machine's other core while the group waits (design §13).

The server's event loop is what limits single posts: it parses every request, runs every group
and checks every signature (~70 µs each, a fifth of a group's work). For each group,
:class:`Presigner` sends the signatures of the posts whose sender's key it has
seen to a :class:`~opseal.crypto.signature_worker.SignatureWorker` (a child process), and the
loop serves other requests while the child checks them. The verdicts only spare work: the
group still judges every post by every rule in order, and takes a signature as verified only
if the child verified that very signature and signed bytes under the key the group read from
the database in its transaction (:meth:`~opseal.crypto.envelope.CheckedSignature.covers`);
otherwise it checks the signature itself, as without a child. A forged post is refused the
same way whichever checked it.

The keys are what earlier groups read: a device's signing key never changes, and a key that
differed would only make the verdict not cover the post. The child starts with the first group
of :data:`WORKER_FROM` posts or more (a lightly used server never starts it); if it fails or
stops answering within :data:`ANSWER_WITHIN` seconds its verdicts are "not checked", and a new
one is started at most every :data:`RESTART_AFTER` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from opseal.crypto.envelope import CheckedSignature, Envelope
from opseal.crypto.keys import VerifyKey
from opseal.crypto.signature_worker import SignatureWorker

__all__ = ["ANSWER_WITHIN", "MAX_KEYS", "RESTART_AFTER", "WORKER_FROM", "Presigner"]

log = structlog.get_logger(__name__)

WORKER_FROM = 4
"""Posts with a known key a group needs before their signatures go to the child: a sending
trip costs the loop about as much as checking two or three signatures itself."""
ANSWER_WITHIN = 2.0
"""Seconds a group waits for its verdicts before the child is given up (it answers 16 in ~1 ms)."""
RESTART_AFTER = 60.0
"""Seconds between two starts of the child."""
MAX_KEYS = 100_000
"""Devices whose keys are kept; past that the cache starts again (a bound, not a policy)."""


class Presigner:
    """Verdicts of a child process on the signatures of a group's posts."""

    def __init__(self) -> None:
        self._keys: dict[str, VerifyKey] = {}
        self._worker: SignatureWorker | None = None
        self._started_at = float("-inf")
        self._starting = asyncio.Lock()
        self._closed = False

    def learn(self, device_id: str, key: bytes) -> VerifyKey:
        """The signing key the database holds for ``device_id`` (read in a group), loaded:
        the one kept if it is the same key (loading one costs ~5 µs a post)."""
        known = self._keys.get(device_id)
        if known is not None and known.raw == key:
            return known
        if len(self._keys) >= MAX_KEYS:
            self._keys.clear()
        loaded = self._keys[device_id] = VerifyKey(key)
        return loaded

    async def check(self, posts: Sequence[tuple[str, Envelope]]) -> list[CheckedSignature | None]:
        """For each ``(device id, envelope)``: its signature as the child verified it under the
        device's known key, or None (not sent, refused, or no answer)."""
        found: list[CheckedSignature | None] = [None] * len(posts)
        asked = [
            (n, CheckedSignature(key.raw, envelope.signature, envelope.to_be_signed()))
            for n, (device_id, envelope) in enumerate(posts)
            if (key := self._keys.get(device_id)) is not None
        ]
        if len(asked) < WORKER_FROM:
            return found
        worker = await self._running()
        if worker is None:
            return found
        try:
            future = await worker.check([(c.key, c.signature, c.signed) for _, c in asked])
        except Exception:  # a key or signature of the wrong size, a batch too large to send
            return found  # the group checks them itself
        verdicts = await future
        for (n, checked), verdict in zip(asked, verdicts, strict=False):
            if verdict == 1:
                found[n] = checked
        return found

    async def _running(self) -> SignatureWorker | None:
        async with self._starting:  # one start at a time; taken at once when nobody starts one
            if self._worker is not None and self._worker.working:
                return self._worker
            if self._closed or time.monotonic() - self._started_at < RESTART_AFTER:
                return None  # it failed lately: the groups check their own signatures meanwhile
            self._started_at = time.monotonic()
            old, self._worker = self._worker, SignatureWorker(answer_within=ANSWER_WITHIN)
            if old is not None:
                log.warning("signature worker stopped; starting another")
                await old.close()
            await self._worker.start()
            if self._closed:  # the server stopped while the child started
                await self.close()
                return None
            return self._worker if self._worker.working else None

    async def close(self) -> None:
        """Stop the child, if it runs; none is started after this."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.close()
