"""A group's signatures checked in a child process before its transaction (design §13): the
verdicts spare the loop work and never let a forgery through."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from opseal.crypto import signature_worker
from opseal.crypto.encoding import b64e
from opseal.crypto.envelope import CheckedSignature, Envelope
from opseal.crypto.keys import VerifyKey
from opseal.server.errors import InvalidSignature
from opseal.server.services import group_commit, identity, presigning
from opseal.server.services.areas import AreaRef

from .helpers import envelope, make_area
from .test_areas import forged


@pytest.fixture(autouse=True)
def patient(monkeypatch):
    """A child starting on a loaded test machine may take longer than the 2 s a server gives
    it; these tests are about what its verdicts do, so they give it 30."""
    monkeypatch.setattr(presigning, "ANSWER_WITHIN", 30.0)


@pytest.fixture
async def posting(operation):
    """(post a group of envelopes at once -> answers, the server's context, the area, the
    area's state and secret) for the customs device."""
    state, secret = await make_area(operation, "seizures", ["customs", "customs2"])
    ctx, ref = operation.server.ctx, AreaRef(operation.id, "seizures")
    who = {
        name: await identity.authenticate(ctx, operation.actors[name].api.token or "")
        for name in ("customs", "customs2")
    }

    async def post(group: list[tuple[str, Envelope]]) -> list[int | BaseException]:
        return await asyncio.gather(
            *(group_commit.post_message(ctx, who[n], ref, b64e(e.to_bytes())) for n, e in group),
            return_exceptions=True,
        )

    return post, ctx, state, secret


def _sealed(operation, state, secret, counters, who="customs"):
    return [(who, envelope(operation, who, state, secret, n)) for n in counters]


async def test_a_group_s_signatures_are_checked_in_the_child_and_a_forgery_is_still_refused(
    operation, posting, monkeypatch
):
    """Once the group knows the senders' keys, their signatures go to the child and the loop
    checks none of them itself; a forged post among them is refused (the child says no, the
    group checks it and refuses it) and the others are stored."""
    post, ctx, state, secret = posting
    first = await post(_sealed(operation, state, secret, [1]))  # the group learns the key
    assert isinstance(first[0], int)
    checked_here: list[bytes] = []
    verify = VerifyKey.verify

    def counted(self, signature, message, *, what="signature"):
        checked_here.append(signature)
        return verify(self, signature, message, what=what)

    monkeypatch.setattr(VerifyKey, "verify", counted)
    group = _sealed(operation, state, secret, [2, 3, 4, 5, 6])
    answers = await post(group)
    assert answers == list(range(first[0] + 1, first[0] + 6))
    assert checked_here == []  # all five verified by the child
    assert ctx.presigner._worker is not None
    assert ctx.presigner._worker.working

    bad = forged(envelope(operation, "customs", state, secret, 8))
    group = [*_sealed(operation, state, secret, [7]), ("customs", bad),
             *_sealed(operation, state, secret, [8, 9, 10])]  # fmt: skip
    answers = await post(group)
    assert isinstance(answers[1], InvalidSignature)
    assert answers[0] == first[0] + 6
    assert answers[2:] == [first[0] + 7, first[0] + 8, first[0] + 9]
    assert checked_here == [bad.signature]  # only the one the child refused


async def test_a_verdict_under_another_key_than_the_roster_s_covers_nothing(operation, posting):
    """A hostile member signs posts under its own device's key and puts them in another
    member's name; even if the presigner held the wrong key for that device (so the child says
    yes), the verdict is not under the key the group reads from the roster: refused."""
    post, ctx, state, secret = posting
    await post(
        [
            *_sealed(operation, state, secret, [1]),
            *_sealed(operation, state, secret, [1], "customs2"),
        ]
    )
    customs = operation.actors["customs"]
    impostor = operation.actors["customs2"].identity
    presigner = ctx.presigner
    presigner.learn(customs.device_id, impostor.signing_key.verify_key.raw)  # the wrong key
    group = []
    for n in range(2, 7):
        honest = envelope(operation, "customs", state, secret, n)
        signature = impostor.signing_key.sign(honest.to_be_signed())
        group.append(("customs", Envelope(honest.header, honest.ciphertext, signature)))
    verdicts = await presigner.check([(customs.device_id, e) for _, e in group])
    assert all(isinstance(v, CheckedSignature) for v in verdicts)  # the child said yes
    answers = await post(group)
    assert all(isinstance(a, InvalidSignature) for a in answers), answers


async def test_without_a_working_child_the_group_checks_every_signature_itself(
    operation, posting, monkeypatch
):
    """No interpreter to start the child (or a child that stopped): nothing waits for it,
    the posts are stored and a forgery refused; no new child is tried before a minute."""
    monkeypatch.setattr(signature_worker.sys, "executable", "/nonexistent/python")
    post, ctx, state, secret = posting
    await post(_sealed(operation, state, secret, [1]))
    bad = forged(envelope(operation, "customs", state, secret, 3))
    answers = await post([*_sealed(operation, state, secret, [2]), ("customs", bad),
                          *_sealed(operation, state, secret, [3, 4, 5])])  # fmt: skip
    assert isinstance(answers[1], InvalidSignature)
    stored = [a for n, a in enumerate(answers) if n != 1]
    assert stored == list(range(stored[0], stored[0] + 4))
    assert ctx.presigner._worker is None or not ctx.presigner._worker.working
    started = ctx.presigner._started_at
    await post(_sealed(operation, state, secret, [6, 7, 8, 9]))
    assert ctx.presigner._started_at == started


async def test_a_child_that_stops_answering_costs_a_group_at_most_its_wait(
    operation, posting, monkeypatch
):
    """A child that hangs (stopped) is given up after ANSWER_WITHIN: the group then checks
    its own signatures and is stored; the following groups do not wait for it."""
    post, ctx, state, secret = posting
    [seq] = await post(_sealed(operation, state, secret, [1]))
    assert await post(_sealed(operation, state, secret, [2, 3, 4, 5])) == [
        seq + n for n in (1, 2, 3, 4)
    ]
    worker = ctx.presigner._worker
    assert worker is not None
    assert worker.working
    # Given up after 0.3 s from now on (its first answer had the default wait: a child
    # starting on a loaded machine takes longer than that).
    worker._answer_within = 0.3
    worker._proc.send_signal(signal.SIGSTOP)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        answers = await post(_sealed(operation, state, secret, [6, 7, 8, 9]))
        assert answers == [seq + n for n in (5, 6, 7, 8)]
        assert loop.time() - start < 2.0
        assert not worker.working  # given up, and killed
        started = ctx.presigner._started_at
        sent: list[int] = []
        monkeypatch.setattr(
            signature_worker.SignatureWorker, "check", lambda _, items: sent.append(len(items))
        )
        answers = await post(_sealed(operation, state, secret, [10, 11, 12, 13]))
        assert answers == [seq + n for n in (9, 10, 11, 12)]
        assert sent == []  # nothing waits for a child: none is asked, none started
        assert ctx.presigner._started_at == started
    finally:
        with contextlib.suppress(ProcessLookupError):
            worker._proc.send_signal(signal.SIGCONT)


async def test_no_child_is_started_once_the_server_began_to_stop(operation, posting):
    """After the presigner is closed (the server stopping), groups check their own
    signatures: no child is left behind by a group that came late."""
    post, ctx, state, secret = posting
    [seq] = await post(_sealed(operation, state, secret, [1]))
    await ctx.presigner.close()
    assert await post(_sealed(operation, state, secret, [2, 3, 4, 5])) == [
        seq + n for n in (1, 2, 3, 4)
    ]
    assert ctx.presigner._worker is None


async def test_the_child_gets_none_of_the_server_s_secrets(operation, posting, monkeypatch):
    """The server's environment holds its database URL, metrics token and object-store keys;
    the signature child is started without them."""
    monkeypatch.setenv("OPSEAL_DATABASE_URL", "postgresql://opseal:db-s3cret@db/opseal")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-s3cret")
    post, ctx, state, secret = posting
    await post(_sealed(operation, state, secret, [1]))
    await post(_sealed(operation, state, secret, [2, 3, 4, 5]))
    worker = ctx.presigner._worker
    assert worker is not None
    assert worker.working
    environment = Path(f"/proc/{worker._proc.pid}/environ").read_bytes()
    assert b"s3cret" not in environment
    assert b"PYTHONPATH=" in environment
