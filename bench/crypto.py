"""Crypto-core benchmark: message seal/open, commits for 300 and 1,500 devices, update
commits (rotation) for 300 and 500 devices, attachments.

Runs on one core (the process is pinned to CPU 0 where the OS allows). The last line printed
is one JSON object with the figures. Usage: ``.venv/bin/python bench/crypto.py [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import uuid

from opseal.crypto.attachments import decrypt_file, encrypt_file
from opseal.crypto.certs import issue_user_certificate
from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.envelope import Header, ReplayTracker, open_envelope, seal
from opseal.crypto.group import (
    DeviceIdentity,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
)
from opseal.crypto.keys import HpkePrivateKey, SigningKey

NOW = 1_780_000_000
YEAR = 365 * 86400
INSTANCE = "bench"
ORGS = 120  # STOP IV had 119 customs administrations


class RepeatReader(io.RawIOBase):
    """A readable stream of ``total`` bytes that never holds more than one block."""

    def __init__(self, total: int, block: bytes) -> None:
        self.left, self.block = total, block

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


class Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)


def world(devices: int):
    roots = {f"org-{i:03d}": SigningKey.generate() for i in range(ORGS)}
    members = [
        Member(org, org, "customs-administration", "coordinator" if i == 0 else "customs",
               key.verify_key)
        for i, (org, key) in enumerate(roots.items())
    ]  # fmt: skip
    areas = [AreaPolicy("seizures", frozenset({"coordinator", "customs"}),
                        frozenset({"coordinator", "customs"}), "since-join")]  # fmt: skip
    users = {}
    for org, root in roots.items():
        key = SigningKey.generate()
        cert = issue_user_certificate(
            root, organisation_id=org, user_id=f"{org}-officer", user_kind="person", name="x",
            identity_key=key.verify_key, issued_at=NOW - 10, expires_at=NOW + YEAR,
        )  # fmt: skip
        users[org] = (key, cert)
    lead_key, lead_cert = users["org-000"]
    charter = Charter.create(
        operation_id="op", code="BENCH", name="Bench", starts_at=NOW, ends_at=NOW + YEAR,
        members=members, areas=areas, issued_at=NOW - 5,
    ).signed(lead_key, lead_cert)  # fmt: skip
    orgs = list(roots)
    identities = [
        DeviceIdentity.generate(
            *users[orgs[i % ORGS]],
            device_id=f"dev-{i:05d}",
            name="d",
            issued_at=NOW - 10,
            expires_at=NOW + YEAR,
        )
        for i in range(devices + 1)
    ]
    return charter, identities


def bench_commit(devices: int) -> dict[str, float]:
    charter, ids = world(devices)
    coordinator, others = ids[0], ids[1:]
    _, state0, _ = create_area(charter, coordinator, instance_id=INSTANCE, area="seizures", now=NOW)
    packages = [KeyPackage.create(d, operation_id="op", area="seizures", now=NOW) for d in others]
    start = time.perf_counter()
    commit, state1, _ = create_commit(state0, charter, coordinator, now=NOW, adds=packages)
    created = time.perf_counter() - start
    start = time.perf_counter()
    assert apply_commit(state0, commit, charter, now=NOW) == state1
    applied = time.perf_counter() - start
    start = time.perf_counter()
    create_commit(state1, charter, coordinator, now=NOW)  # rotation: reseal to everyone
    rotated = time.perf_counter() - start
    return {
        f"commit_{devices}_s": round(created, 4),
        f"commit_{devices}_apply_s": round(applied, 4),
        f"commit_{devices}_rotate_s": round(rotated, 4),
        f"commit_{devices}_bytes": len(commit.to_bytes()),
    }


def bench_update(devices: int) -> dict[str, float]:
    """An update commit (design §3): a fresh init key for the committer and the new epoch
    secret sealed to every member's init key — what `opseal rotate` and each scheduled
    rotation cost the committer, and what applying it costs every member."""
    charter, ids = world(devices)
    coordinator, others = ids[0], ids[1:]
    _, state0, _ = create_area(
        charter, coordinator, instance_id=INSTANCE, area="seizures", now=NOW,
        init_key=HpkePrivateKey.generate().public_key,
    )  # fmt: skip
    packages = [
        KeyPackage.create(d, operation_id="op", area="seizures", now=NOW,
                          init_key=HpkePrivateKey.generate().public_key)
        for d in others
    ]  # fmt: skip
    _, state1, _ = create_commit(state0, charter, coordinator, now=NOW, adds=packages)
    start = time.perf_counter()
    fresh = HpkePrivateKey.generate()
    commit, state2, _ = create_commit(
        state1, charter, coordinator, now=NOW, init_key=fresh.public_key
    )
    created = time.perf_counter() - start
    start = time.perf_counter()
    assert apply_commit(state1, commit, charter, now=NOW) == state2
    applied = time.perf_counter() - start
    return {
        f"update_commit_{devices}_s": round(created, 4),
        f"update_commit_{devices}_apply_s": round(applied, 4),
        f"update_commit_{devices}_bytes": len(commit.to_bytes()),
    }


def bench_messages(count: int) -> dict[str, float]:
    charter, ids = world(2)
    coordinator, sender = ids[0], ids[1]
    _, state0, _ = create_area(charter, coordinator, instance_id=INSTANCE, area="seizures", now=NOW)
    kp = KeyPackage.create(sender, operation_id="op", area="seizures", now=NOW)
    _, state, secret = create_commit(state0, charter, coordinator, now=NOW, adds=[kp])
    body = os.urandom(1536)
    headers = [
        Header(INSTANCE, "op", "seizures", state.epoch, sender.device_id, n + 1, uuid.uuid4(),
               "seizure", "H0", False, NOW * 1000)
        for n in range(count)
    ]  # fmt: skip
    start = time.perf_counter()
    envelopes = [seal(h, body, secret, sender.signing_key) for h in headers]
    sealed = time.perf_counter() - start
    tracker = ReplayTracker()
    start = time.perf_counter()
    for envelope in envelopes:
        open_envelope(envelope, state=state, epoch_secret=secret, charter=charter, tracker=tracker)
    opened = time.perf_counter() - start
    return {"seal_msgs_per_s": round(count / sealed), "open_msgs_per_s": round(count / opened)}


def bench_attachments(size: int) -> dict[str, float]:
    block = os.urandom(1 << 20)
    start = time.perf_counter()
    encrypt_file(RepeatReader(size, block), Sink(), media_type="application/octet-stream",
                 file_name="bench.bin")  # fmt: skip
    encrypted = time.perf_counter() - start
    ciphertext = io.BytesIO()  # untimed: an in-memory copy to decrypt from
    meta = encrypt_file(RepeatReader(size, block), ciphertext,
                        media_type="application/octet-stream", file_name="bench.bin")  # fmt: skip
    ciphertext.seek(0)
    start = time.perf_counter()
    decrypt_file(ciphertext, Sink(), meta)  # includes the full ciphertext-hash pass first
    decrypted = time.perf_counter() - start
    mb = size / 1e6
    return {
        "attach_bytes": size,
        "attach_encrypt_mb_s": round(mb / encrypted),
        "attach_decrypt_mb_s": round(mb / decrypted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results: dict[str, float] = {"cores": len(os.sched_getaffinity(0))}
    results |= bench_messages(2_000 if args.quick else 20_000)
    results |= bench_commit(300)
    results |= bench_update(300)
    results |= bench_update(500)
    if not args.quick:
        results |= bench_commit(1500)
    results |= bench_attachments((16 if args.quick else 512) << 20)
    for key, value in results.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
