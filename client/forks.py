"""``ForkWatch``: fork, split-view and freeze detection (design §4 "Forks and freezes", §7).

A dishonest server cannot forge a commit, a message or a checkpoint, but it can show members
different ones. Three checks catch it, each recording a warning (exit 4 in the CLI):

- ``fork``: a message or a receipt from another member carries an epoch authenticator
  (:func:`~opseal.crypto.group.epoch_authenticator`) that differs from the one this device
  derives for the same epoch, or names an epoch the server never showed this device.
  Messages are checked by :func:`~opseal.crypto.envelope.open_envelope`; receipts here, as
  they arrive in the area's sequence (:meth:`ForkWatch.check_receipt`).
- ``split-view``: a receipt carries an audit checkpoint, signed by the pinned log key, that
  this device's own last verified checkpoint is not consistent with (same size and another
  root, or a consistency proof the server cannot give).
- ``epoch-frozen``: the newest epoch this device holds in an area it belongs to is older than
  the rotation period plus :data:`FREEZE_GRACE` (:meth:`ForkWatch.check_frozen`, at sync).

What this device tells the others goes into its own receipts (:meth:`ForkWatch.gossip`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from opseal.crypto.charter import DEFAULT_ROTATION_PERIOD
from opseal.crypto.encoding import sha256
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import GroupState, epoch_authenticator
from opseal.crypto.keys import VerifyKey
from opseal.crypto.merkle import Checkpoint, verify_consistency
from opseal.crypto.statements import Receipt, ReceiptGossip

from .errors import BadRequestError, ConflictError, MalformedAnswerError, NotFoundError
from .session import Session
from .store import Store

__all__ = ["FREEZE_GRACE", "FREEZE_REPEAT", "ForkWatch"]

FREEZE_GRACE = 3600
"""Slack past the rotation period before a member calls its area frozen (an admitter that
rotates on a timer, clock skew)."""
FREEZE_REPEAT = 3600
"""Seconds between two ``epoch-frozen`` warnings for the same area, so that a frozen member
is told again at least hourly without filling its store."""
_CHECKPOINT_KEY = "audit-checkpoint"


class ForkWatch:
    """Compares what other members sign with what this device was shown."""

    def __init__(self, session: Session, store: Store, device_id: str, log_key: bytes) -> None:
        self._session, self._store = session, store
        self._device_id, self._log_key = device_id, log_key
        self._authenticators: dict[tuple[str, str, int, bytes], bytes] = {}

    def authenticator(self, op: str, area: str, state: GroupState, secret: bytes) -> bytes:
        """The epoch authenticator of ``state``, kept per epoch (it hashes the whole state:
        tens of milliseconds for a roster of hundreds of devices). Keyed by the secret's hash
        too: a sync page rolled back and served again may bring another commit for the epoch."""
        key = (op, area, state.epoch, sha256(secret))
        if key not in self._authenticators:
            self._authenticators[key] = epoch_authenticator(secret, state)
        return self._authenticators[key]

    # -- what this device tells the others ------------------------------------------------
    def gossip(self, op: str, area: str) -> ReceiptGossip | None:
        """This device's epoch and epoch authenticator in ``op``/``area`` and its last
        verified audit checkpoint, for its receipts (``None`` before it holds an epoch)."""
        latest = self._store.latest_state(op, area)
        if latest is None:
            return None
        secret = self._store.secret(op, area, latest[0])
        if secret is None:
            return None
        state = GroupState.from_bytes(latest[1])
        checkpoint = self._store.get(_CHECKPOINT_KEY) or b""
        return ReceiptGossip(state.epoch, self.authenticator(op, area, state, secret), checkpoint)

    # -- what the others tell it --------------------------------------------------------------
    async def check_receipt(self, op: str, area: str, seq: int, body: bytes) -> None:
        """Compare the gossip of another member's receipt with this device's own view.

        Receipts that do not decode, carry no gossip or do not verify against the signer's
        key in the area's roster are left to :meth:`Receipts.acks` (a server could forge
        those, so they prove nothing here)."""
        try:
            receipt = Receipt.from_bytes(body)
        except CryptoError:
            return
        gossip = receipt.gossip
        if gossip is None or receipt.device_id == self._device_id:
            return
        if (receipt.operation_id, receipt.area) != (op, area) or not self._signed(receipt):
            return
        self._compare_epoch(op, area, seq, receipt.device_id, gossip)
        await self._compare_checkpoint(op, area, seq, receipt.device_id, gossip.checkpoint)

    def _signed(self, receipt: Receipt) -> bool:
        """Whether the receipt verifies against its signer's key in the roster of the epoch it
        names (or this device's latest one, when it holds no such epoch)."""
        op, area = receipt.operation_id, receipt.area
        assert receipt.gossip is not None
        raw = self._store.state(op, area, receipt.gossip.epoch)
        if raw is None:
            latest = self._store.latest_state(op, area)
            raw = latest[1] if latest else None
        entry = GroupState.from_bytes(raw).member(receipt.device_id) if raw else None
        if entry is None:
            return False
        try:
            receipt.verify(entry.signing_key)
        except CryptoError:
            return False
        return True

    def _compare_epoch(
        self, op: str, area: str, seq: int, signer: str, gossip: ReceiptGossip
    ) -> None:
        raw = self._store.state(op, area, gossip.epoch)
        secret = self._store.secret(op, area, gossip.epoch)
        if raw is not None and secret is not None:
            mine = self.authenticator(op, area, GroupState.from_bytes(raw), secret)
            if not hmac.compare_digest(mine, gossip.authenticator):
                self._store.warn(op, area, seq, "fork", (
                    f"fork in area {area!r}, epoch {gossip.epoch}: {signer!r} signed a receipt "
                    "under another commit of this epoch than the one this device holds"
                ))  # fmt: skip
            return
        latest = self._store.latest_state(op, area)
        if latest is not None and gossip.epoch > latest[0]:
            self._store.warn(op, area, seq, "fork", (
                f"fork in area {area!r}: {signer!r} signed a receipt at epoch {gossip.epoch}, "
                f"which the server never showed this device (it holds epoch {latest[0]})"
            ))  # fmt: skip

    async def _compare_checkpoint(
        self, op: str, area: str, seq: int, signer: str, raw: bytes
    ) -> None:
        mine_raw = self._store.get(_CHECKPOINT_KEY)
        if not raw or not mine_raw or not self._log_key or raw == mine_raw:
            return
        try:
            theirs = Checkpoint.from_bytes(raw)
            theirs.verify(VerifyKey(self._log_key).verify)
        except CryptoError:
            return  # not signed by the pinned log key: the signer's claim proves nothing
        mine = Checkpoint.from_bytes(mine_raw)
        small, large = sorted((mine, theirs), key=lambda c: c.size)
        seen = "checkpoints-consistent/" + sha256(small.to_bytes(), large.to_bytes()).hex()
        if self._store.get(seen):
            return
        problem = await self._inconsistency(small, large)
        if problem is None:
            self._store.put(seen, b"1")
            return
        self._store.warn(op, area, seq, "split-view", (
            f"split view of the audit log: {signer!r} verified a checkpoint of size "
            f"{theirs.size} that this device's checkpoint of size {mine.size} is not "
            f"consistent with ({problem}): the server shows members different logs"
        ))  # fmt: skip

    async def _inconsistency(self, small: Checkpoint, large: Checkpoint) -> str | None:
        """Why the two verified checkpoints cannot both be views of one log (None if they
        can: the server proves the smaller is a prefix of the larger)."""
        if small.log_id != large.log_id:
            return f"logs {small.log_id!r} and {large.log_id!r}"
        if small.size == large.size:
            return None if small.root == large.root else "same size, different roots"
        try:
            proof = await self._session.api.audit_consistency_proof(small.size, large.size)
            verify_consistency(small.size, large.size, small.root, large.root, proof)
        except (BadRequestError, NotFoundError, ConflictError, MalformedAnswerError) as exc:
            # a transient failure (unavailable, rate limited) propagates: the sync page is
            # retried, this receipt with it
            return f"the server gives no consistency proof: {exc}"
        except CryptoError as exc:
            return f"the consistency proof fails: {exc}"
        return None

    # -- freezes ------------------------------------------------------------------------------
    def check_frozen(
        self,
        now: int,
        period_of: Callable[[str, str], int | None] = lambda op, area: DEFAULT_ROTATION_PERIOD,
    ) -> None:
        """Warn (``epoch-frozen``) for every area this device belongs to whose newest epoch
        is older than its rotation period (``period_of(op, area)``, seconds, the charter's;
        None: no rotation is due, the operation has ended) plus
        :data:`FREEZE_GRACE`; at most every :data:`FREEZE_REPEAT` seconds per area."""
        for op, area in self._store.areas():
            latest = self._store.latest_state(op, area)
            if latest is None:
                continue
            period = period_of(op, area)
            if period is None:
                continue
            state = GroupState.from_bytes(latest[1])
            fresh = now - state.created_at <= period + FREEZE_GRACE
            if fresh or state.member(self._device_id) is None:
                continue
            key = f"frozen-warned/{op}/{area}"
            last = self._store.get(key)
            if last is not None and now - int(last) < FREEZE_REPEAT:
                continue
            self._store.put(key, str(now).encode())
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(state.created_at))
            self._store.warn(op, area, None, "epoch-frozen", (
                f"area {area!r} of {op} has had no new epoch since {since} (epoch "
                f"{state.epoch}), longer than its rotation period of {period} s: the server "
                "may be holding this device on an old epoch"
            ))  # fmt: skip
