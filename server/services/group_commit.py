"""Group commit of single message posts (design §13).

A single post used to pay for a whole write transaction of its own: on SQLite the write lock
(concurrent posts queued on it, each retry sleeping in SQLite's busy handler), on PostgreSQL the
area's row lock, and on both one audit append and one commit per message. Here each post is
parsed and checked for what needs no database (:func:`.areas.parse_envelopes`) in its own
request, then joins its area's queue. One drain task per area takes everything queued and
stores it at once — on SQLite in **one** transaction holding the write lock; on PostgreSQL by
one self-committing statement that writes only if the area has not moved since the group was
judged (:func:`_store_unlocked`), else in one transaction holding the area's lock — while each
post is judged on its own, exactly as :func:`.areas.store_envelopes` judges a batch of one:
membership, phase, the charter's post rule, roster, epoch, signature, counter, idempotent
message id. A post refused by those rules gets its own error and the others go on.

Nothing is answered before its write has committed: the futures are settled after it returned.
If the group's write itself fails (a database error, a race with a batch storing the same
message id), every post of the group is retried in a transaction of its own, so one post's
trouble never becomes another's. Posts that arrive while a group is stored form the next group,
so the group size follows the load without any wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from opseal.crypto.envelope import CheckedSignature, Envelope
from opseal.crypto.keys import VerifyKey

from ..errors import Forbidden, OpSealError, Unavailable
from ..storage import entries
from .areas import (
    GENERIC_PLANS_FROM,
    AreaRef,
    _advance,
    _check_counter,
    _check_new,
    _idempotent,
    _lock_area,
    _message_rows,
    parse_envelopes,
    store_envelopes,
)
from .base import Context, Principal, Tx
from .operations import Membership, membership

__all__ = ["post_message", "post_one"]

GATHER_TURNS = 16
"""The most turns of the event loop a drain waits before it takes a group (:func:`_gathered`)."""

GROUP_SIZE = Histogram(
    "opseal_single_post_group_size",
    "Single posts committed in one transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)


@dataclass
class _Post:
    principal: Principal
    envelope: Envelope
    body: bytes
    answer: asyncio.Future[int]

    @property
    def message_id(self) -> str:
        return str(self.envelope.header.message_id)


@dataclass
class _Sender:
    """What the group knows of one device of the area's roster while it judges the device's
    posts in order."""

    key: VerifyKey
    last_counter: int
    stored: dict[str, Any]
    """The device's stored entries among the group's message ids (``seq``, ``body``)."""
    fresh: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Message ids stored by this group: a repeat answers like a stored one."""


async def post_message(ctx: Context, principal: Principal, ref: AreaRef, text: str) -> int:
    """Store one envelope (base64url) as :func:`.areas.post_messages` stores a batch of one,
    committed together with the other single posts queued for the area; its number."""
    [(envelope, body)] = parse_envelopes([text], ctx, principal, ref)
    return await post_one(ctx, principal, ref, envelope, body)


async def post_one(
    ctx: Context, principal: Principal, ref: AreaRef, envelope: Envelope, body: bytes
) -> int:
    """Store one parsed envelope with whatever else is queued for its area; its number."""
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ctx.groups.setdefault(ref, []).append(_Post(principal, envelope, body, answer))
    drain = ("drain", ref)
    if drain not in ctx.groups:
        ctx.groups[drain] = asyncio.create_task(_drain(ctx, ref))
    return await answer


async def _drain(ctx: Context, ref: AreaRef) -> None:
    """Commit the area's queue group after group until it is empty. A drain that is stopped
    (the server shutting down) answers every post it has not answered: unknown outcome."""
    waiting: list[_Post] = []
    try:
        while posts := await _gathered(ctx, ref):
            waiting = [post for post in posts if not post.answer.done()]  # not cancelled
            for start in range(0, len(waiting), ctx.settings.max_batch):
                await _commit(ctx, ref, waiting[start : start + ctx.settings.max_batch])
    finally:
        del ctx.groups[("drain", ref)]
        stopped = Unavailable("the server stopped while storing: post again")
        for post in [*waiting, *ctx.groups.pop(ref, [])]:
            _settle(post, stopped)  # none is left when the drain ran to its end


async def _gathered(ctx: Context, ref: AreaRef) -> list[_Post] | None:
    """The area's queue, taken once the requests this server has already received have joined it.

    A request whose bytes have arrived is parsed and checked within a turn or two of the event
    loop, then joins the queue. Taking the queue at once made groups of about half the posts in
    flight (8 of 32 in ``bench/server.py``) while the others were a turn away; a group's cost is
    mostly its own (begin, area lock, reads, one write, commit), so posts per group set the
    server's CPU per post (design §13). The drain lets the loop turn while the queue grows: it
    takes it at the first turn that added nothing, when it holds ``max_batch`` posts, or after
    :data:`GATHER_TURNS` turns. A lone post waits one turn — no timer, microseconds when idle.
    """
    queued = 0
    for _ in range(GATHER_TURNS):
        now = len(ctx.groups.get(ref, ()))
        if now == queued or now >= ctx.settings.max_batch:
            break
        queued = now
        await asyncio.sleep(0)
    posts: list[_Post] | None = ctx.groups.pop(ref, None)
    return posts


async def _commit(ctx: Context, ref: AreaRef, posts: list[_Post]) -> None:
    GROUP_SIZE.observe(len(posts))
    # The child checks the signatures while the group waits: on SQLite before the transaction
    # (no write lock held meanwhile: the statements run on the loop and never wait), on
    # PostgreSQL while its reads (senders, or area lock and senders) are on their way.
    verdicts = asyncio.ensure_future(
        ctx.presigner.check([(p.principal.device_id, p.envelope) for p in posts])
    )
    try:
        if not ctx.settings.is_postgres:
            await verdicts
        answers = await _store_group(ctx, ref, posts, verdicts)
    except Exception:  # the group's transaction failed: each post on its own
        verdicts.cancel()
        await asyncio.gather(*(_alone(ctx, ref, post) for post in posts))
        return
    except BaseException:  # the server is stopping: unknown outcome, a retry is idempotent
        verdicts.cancel()
        for post in posts:
            _settle(post, Unavailable("the server stopped while storing: post again"))
        raise
    for post, answer in zip(posts, answers, strict=True):
        _settle(post, answer)


async def _alone(ctx: Context, ref: AreaRef, post: _Post) -> None:
    try:
        [seq] = await store_envelopes(ctx, post.principal, ref, [(post.envelope, post.body)])
    except Exception as exc:  # the request's own error, raised in its view
        _settle(post, exc)
    else:
        _settle(post, seq)


def _settle(post: _Post, answer: int | BaseException) -> None:
    if post.answer.done():
        return
    if isinstance(answer, BaseException):
        post.answer.set_exception(answer)
    else:
        post.answer.set_result(answer)


async def _store_group(
    ctx: Context,
    ref: AreaRef,
    posts: list[_Post],
    verdicts: asyncio.Future[list[CheckedSignature | None]],
) -> list[int | OpSealError]:
    """All ``posts`` stored at once; each one's number or its own refusal. Returns once they
    are durable. ``verdicts``: the posts' signatures as the presigner's child verified them.

    On PostgreSQL a group of fewer than :data:`.areas.GENERIC_PLANS_FROM` posts is first judged
    on what autocommit reads show and written by one statement that commits itself only if the
    area's sequence has not moved since it was read (:func:`_store_unlocked`); if it has, the
    group is judged again under the area's lock. Otherwise, and on SQLite: one transaction
    holding the area's lock (:func:`_store_locked`)."""
    if ctx.settings.is_postgres and len(posts) < GENERIC_PLANS_FROM:
        try:
            answers = await _store_unlocked(ctx, ref, posts, verdicts)
        except entries.AreaMoved:
            answers = None  # another writer stored in the area meanwhile: nothing was written
        if answers is not None:
            return answers
    return await _store_locked(ctx, ref, posts, verdicts)


async def _store_unlocked(
    ctx: Context,
    ref: AreaRef,
    posts: list[_Post],
    verdicts: asyncio.Future[list[CheckedSignature | None]],
) -> list[int | OpSealError] | None:
    """Two round trips where the locked transaction takes five (BEGIN, lock, senders, write,
    COMMIT). One statement reads the senders with the area's ``next_seq`` and epoch, all from
    one snapshot; the write is one statement (:func:`.entries.append_recorded`) that stores
    nothing, raising ``AreaMoved``, unless ``next_seq`` is still the one read. None — judge the
    group under the lock — if no sender is on the area's roster (the area's row was not read).

    Every change the rules depend on in the area (an entry, a commit that changes the roster
    or the epoch, a key package, a receipt) moves that sequence in the transaction that makes
    it, so a group written is one judged on the area as it stood when written. What is not the
    area's (the operation's phase and charter, an organisation's membership, a device's
    revocation) is read per group and is no more serialised with the write than under the
    lock, where it is read after the lock. The purge of an archived operation's content does
    not move the sequence; nothing is posted to an archived operation (its phase is checked)."""
    async with ctx.statements() as tx:
        group = _Group(ctx, tx, ref, posts)
        roster = await group.read_senders()
        if not roster:
            return None
        head = next(iter(roster.values()))
        answers = await _judged(group, head.area_next_seq, head.area_epoch, posts, verdicts)
    return answers


async def _store_locked(
    ctx: Context,
    ref: AreaRef,
    posts: list[_Post],
    verdicts: asyncio.Future[list[CheckedSignature | None]],
) -> list[int | OpSealError]:
    """One transaction for all ``posts``, holding the area's lock from its first statement."""
    async with ctx.transaction() as tx:
        area = await _lock_area(tx.conn, ref)
        group = _Group(ctx, tx, ref, posts)
        await group.read_senders()
        answers = await _judged(group, area.next_seq, area.epoch, posts, verdicts)
    return answers


async def _judged(
    group: _Group,
    seq: int,
    epoch: int | None,
    posts: list[_Post],
    verdicts: asyncio.Future[list[CheckedSignature | None]],
) -> list[int | OpSealError]:
    """Each post judged in order on the area at ``seq`` and ``epoch`` and its senders as
    :meth:`_Group.read_senders` read them, and those accepted written."""
    answers: list[int | OpSealError] = []
    group.seq, group.epoch = seq, epoch
    for post, checked in zip(posts, await verdicts, strict=True):
        try:
            answers.append(await group.judge(post, checked))
        except OpSealError as exc:
            answers.append(exc)
    if group.rows:
        await _advance(group.tx, group.ref, group.rows, group.audit_rows)
    return answers


class _Group:
    """The rules of :func:`.areas.store_envelopes` for one post at a time, with what the group
    already read (memberships, senders) kept for the posts after it."""

    def __init__(self, ctx: Context, tx: Tx, ref: AreaRef, posts: list[_Post]) -> None:
        self.ctx, self.tx, self.ref = ctx, tx, ref
        self.seq: int = 0
        self.epoch: int | None = None
        self.members: dict[str, Membership | OpSealError] = {}
        self.orgs: dict[str, Any] = {}
        """Memberships by organisation as :meth:`read_senders` read them with the roster."""
        self.senders: dict[str, _Sender] = {}
        self.message_ids: dict[str, list[tuple[str, int]]] = {}
        for post in posts:  # each device's ids are looked up in one query
            self.message_ids.setdefault(post.principal.device_id, []).append(
                (post.message_id, post.envelope.header.counter)
            )
        self.rows: list[dict[str, Any]] = []
        self.audit_rows: list[dict[str, Any]] = []

    async def judge(self, post: _Post, checked: CheckedSignature | None) -> int:
        """``checked``: the post's signature as the presigner's child verified it, or None."""
        await self._member(post.principal)
        sender = self._sender(post)
        message_id = post.message_id
        if message_id in sender.fresh:
            seq, body = sender.fresh[message_id]
            return _idempotent(_Stored(seq, body), post.body, 0)
        if message_id in sender.stored:
            return _idempotent(sender.stored[message_id], post.body, 0)
        _check_new(post.envelope, self.epoch, sender.key, 0, checked)
        sender.last_counter = _check_counter(post.envelope, sender.last_counter, 0)
        self.seq += 1
        sender.fresh[message_id] = (self.seq, post.body)
        self._append(post)
        return self.seq

    async def _member(self, principal: Principal) -> None:
        org = principal.org_id
        if org not in self.members:
            try:
                member = await membership(
                    self.ctx, self.tx.conn, principal, self.ref.operation_id, self.orgs.get(org)
                )
                member.check_writable()
                member.check_area(self.ref.area, post=True)
                self.members[org] = member
            except OpSealError as exc:
                self.members[org] = exc
        found = self.members[org]
        if isinstance(found, OpSealError):
            raise found

    async def read_senders(self) -> dict[str, Any]:
        """The roster rows of the sending devices (:func:`.entries.senders_in_roster`), and
        what the rules need of each kept on the group: roster membership with its key and
        latest counter in one query, and the stored entries under the group's message ids in
        another — only those of posts whose counter is not above their sender's last, as in
        :func:`.areas.store_envelopes` (a new counter under a used id fails the insert, and the
        posts are then judged alone)."""
        conn, ref, devices = self.tx.conn, self.ref, sorted(self.message_ids)
        roster = await entries.senders_in_roster(conn, ref.operation_id, ref.area, devices)
        counters = {
            d: Envelope.header_of(row.body).counter
            for d, row in roster.items()
            if row.body is not None
        }
        # Each roster device's organisation's membership came with it: one query less per group
        # (an organisation with no device in the roster is read on its own, in _member).
        self.orgs = {row.org_id: row for row in roster.values()}
        wanted = [
            (d, m)
            for d, posts in self.message_ids.items()
            for m, counter in posts
            if counter <= counters.get(d, 0)
        ]
        stored = (
            await entries.by_senders_message_ids(conn, ref.operation_id, ref.area, wanted)
            if wanted
            else {}
        )
        for device, row in roster.items():
            self.senders[device] = _Sender(
                key=self.ctx.presigner.learn(device, bytes(row.signing_key)),
                last_counter=counters.get(device, 0),
                stored={m: row for (d, m), row in stored.items() if d == device},
            )
        return roster

    def _sender(self, post: _Post) -> _Sender:
        """The post's device as the group read it; :class:`Forbidden` outside the roster."""
        sender = self.senders.get(post.principal.device_id)
        if sender is None:
            raise Forbidden(
                f"device {post.principal.device_id!r} is not a member of area {self.ref.area!r}"
            )
        return sender

    def _append(self, post: _Post) -> None:
        row, audit_row = _message_rows(
            self.tx, self.ref, self.seq, post.principal.device_id, post.envelope, post.body
        )
        self.rows.append(row)
        self.audit_rows.append(audit_row)


@dataclass(frozen=True)
class _Stored:
    seq: int
    body: bytes
