"""Signatures checked ahead by the worker process: every record is still held to every check,
and a forgery in a page checked ahead is refused alone, as without the worker."""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from opseal.client import verifier
from opseal.client.client import Client
from opseal.crypto import signature_worker
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.keys import SigningKey, VerifyKey

from .malicious import Attacker, attacker  # noqa: F401 (fixture)
from .test_malicious import refusals, synced

RECORDS = 120


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 40 entries, and a worker from the first one: a page checked ahead is easy
    to reach."""
    monkeypatch.setattr(verifier, "PAGE_SIZE", 40)
    monkeypatch.setattr(verifier, "WORKER_FROM", 10)


@pytest.fixture
def pages_arrive_first(monkeypatch):
    """Each next page has arrived before the verifier looks ahead, as it has on a quiet
    machine: which signatures the worker checks then does not depend on timing (on a busy
    machine a page that came late is checked here, which is correct, but not this test)."""
    look_ahead = verifier.Verifier._look_ahead

    async def after_the_page(self, worker, current, n, ahead):  # type: ignore[no-untyped-def]
        if ahead is not None:
            await asyncio.wait({ahead})
        await look_ahead(self, worker, current, n, ahead)

    monkeypatch.setattr(verifier.Verifier, "_look_ahead", after_the_page)


@pytest.fixture
def checked_here(monkeypatch) -> list[bytes]:
    """The message signatures this process verifies itself (not the worker)."""
    seen: list[bytes] = []
    verify = VerifyKey.verify

    def counted(key: VerifyKey, signature: bytes, message: bytes, *, what: str = "") -> None:
        if what == "message signature":
            seen.append(signature)
        verify(key, signature, message, what=what)

    monkeypatch.setattr(VerifyKey, "verify", counted)
    return seen


async def _posted(attacker: Attacker) -> tuple[Client, list[int]]:
    """French records posted for the German victim to sync: its client and their seqs."""
    fr, _ = await synced(attacker, "fr-customs", "de-customs")
    fr.enqueue(
        attacker.op, "seizures",
        [("seizure", {"record_id": f"FR-{n}"}) for n in range(1, RECORDS + 1)],
    )  # fmt: skip
    await fr.flush()
    return fr, [seq for seq, _ in await attacker.db.messages(attacker.op, "seizures")]


def _record_ids(client: Client, op: str) -> list[str]:
    return [m.json()["record_id"] for m in client.read(op, "seizures")]


async def test_forged_record_in_a_page_checked_ahead_is_refused_alone(
    attacker, small_pages, pages_arrive_first, checked_here
):
    """A hostile server alters one record in the middle of a page whose signatures the worker
    checks: exactly that record is refused, with the warning a device without a worker
    records, and every other record of the page is kept."""
    _, seqs = await _posted(attacker)
    forged = seqs[RECORDS * 3 // 4]  # the middle of the third page

    def tamper(entry: dict[str, Any]) -> dict[str, Any]:
        if (entry["area"], entry["seq"]) != ("seizures", forged):
            return entry
        body = bytearray(b64d(entry["body"]))
        body[-100] ^= 1  # a bit of the ciphertext: the signature no longer covers it
        return {**entry, "body": b64e(bytes(body))}

    attacker.proxy.on_sync(tamper)
    de = await attacker.victim("de-customs")
    checked_here.clear()
    await de.sync()

    [(area, kind, message)] = refusals(de)
    assert (area, kind) == ("seizures", "message-refused")
    assert message == "message signature does not verify"
    assert _record_ids(de, attacker.op) == [f"FR-{n}" for n in range(1, RECORDS + 1) if n != 91]
    # The worker checked the pages after the first; this process only the first page's and
    # the forgery (which the worker refused).
    assert 1 < len(checked_here) < RECORDS // 2


async def test_without_a_worker_every_record_is_checked_here(
    attacker, small_pages, checked_here, monkeypatch
):
    """When the worker cannot start, the sync checks every signature itself and keeps every
    record."""
    _, _ = await _posted(attacker)
    monkeypatch.setattr(signature_worker.sys, "executable", "/nonexistent/python")
    de = attacker.onboarded.clients["de-customs"]
    checked_here.clear()
    await de.sync()

    assert refusals(de) == []
    assert _record_ids(de, attacker.op) == [f"FR-{n}" for n in range(1, RECORDS + 1)]
    assert len(checked_here) == RECORDS


async def test_the_worker_answers_each_batch_in_order_and_nothing_once_it_is_gone():
    """Verdicts come per item and per batch in the order sent (a forged signature gets 0);
    after the child died every batch is answered "not checked"."""
    key = SigningKey(bytes(range(32)))
    signed = [(f"message {n}".encode(), key.sign(f"message {n}".encode())) for n in range(5)]
    items = [(key.verify_key.raw, sig, msg) for msg, sig in signed]
    forged = [(key.verify_key.raw, signed[0][1], b"message 4"), *items[1:3]]
    worker = signature_worker.SignatureWorker()
    await worker.start()
    try:
        first, second = await worker.check(items), await worker.check(forged)
        assert await first == b"\x01" * 5
        assert await second == b"\x00\x01\x01"
        assert worker._proc is not None
        worker._proc.kill()
        await worker._proc.wait()
        assert await (await worker.check(items)) == b""
    finally:
        await worker.close()


async def test_a_worker_that_does_not_answer_is_given_up(monkeypatch):
    """A child that stops answering turns its pending batches into "not checked" once they
    waited too long, so the sync goes on without it."""
    monkeypatch.setattr(signature_worker, "ANSWER_WITHIN", 0.2)
    key = SigningKey(bytes(range(32)))
    worker = signature_worker.SignatureWorker()
    await worker.start()
    try:
        assert worker._proc is not None
        worker._proc.send_signal(signal.SIGSTOP)
        pending = await worker.check([(key.verify_key.raw, key.sign(b"m"), b"m")])
        assert await asyncio.wait_for(pending, timeout=5) == b""
        assert await (await worker.check([(key.verify_key.raw, key.sign(b"m"), b"m")])) == b""
    finally:
        if worker._proc is not None:
            worker._proc.send_signal(signal.SIGCONT)
        await worker.close()


async def test_a_stopped_worker_does_not_hold_a_batch_larger_than_the_pipe(monkeypatch):
    """A batch beyond the pipe's buffer waits for the child to read it; a stopped child never
    does, and giving it up must end that wait too (the sync holds the store's write lock)."""
    monkeypatch.setattr(signature_worker, "ANSWER_WITHIN", 0.5)
    key = SigningKey(bytes(range(32)))
    message = bytes(4 << 20)  # four 4 MB messages: past the 8 MB the pipe may hold
    items = [(key.verify_key.raw, key.sign(message), message)] * 4
    worker = signature_worker.SignatureWorker()
    await worker.start()
    try:
        assert worker._proc is not None
        worker._proc.send_signal(signal.SIGSTOP)
        pending = await asyncio.wait_for(worker.check(items), timeout=10)
        assert await asyncio.wait_for(pending, timeout=5) == b""
    finally:
        if worker._proc is not None and worker._proc.returncode is None:
            worker._proc.send_signal(signal.SIGCONT)
        await worker.close()
