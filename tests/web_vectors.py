"""Cross-language test vectors for the browser client's crypto core (design §17).

``python tests/web_vectors.py`` writes ``web/test/vectors.json`` with the real Python crypto
core; the TypeScript suite (``make web-test``) checks every vector, and
``tests/test_web_vectors.py`` regenerates them to prove the committed file has not drifted and
checks with Python that a flipped bit in any vector is refused. Every key comes from a fixed
seed and Ed25519 is deterministic, so the output is byte-for-byte reproducible.

Each signed object lists the field whose bytes :func:`flip_positions` flips: both suites flip
one bit at each of those positions and require the object to be refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from opseal.crypto.attachments import encrypt_file
from opseal.crypto.certs import (
    Certificate,
    EnrolmentRequest,
    Revocation,
    issue_device_certificate,
    issue_user_certificate,
)
from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.encoding import Writer, b64e, label
from opseal.crypto.envelope import Header, ReplayTracker, seal
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import (
    Commit,
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
    epoch_authenticator,
    open_epoch_secret,
)
from opseal.crypto.keys import (
    HpkePrivateKey,
    KdfParams,
    SigningKey,
    VerifyKey,
    fingerprint_text,
    hkdf_sha256,
    open_key_file,
    seal_key_file,
)
from opseal.crypto.merkle import (
    Checkpoint,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
)
from opseal.crypto.statements import Receipt, ReceiptGossip, login_message

VECTORS = Path(__file__).resolve().parent.parent / "web" / "test" / "vectors.json"
NOW = 1_780_000_000
YEAR = 365 * 86400
INSTANCE = "opseal-vectors"


def flip_positions(length: int) -> list[int]:
    """Byte positions to flip one bit in (bit ``position % 8``): about 48 spread over the
    object, plus its last byte. The TypeScript suite uses the same rule."""
    step = max(1, length // 48)
    return sorted(set(range(0, length, step)) | {length - 1})


def flipped(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 1 << (position % 8)
    return bytes(out)


def seeded(name: str, size: int = 32) -> bytes:
    return hashlib.shake_256(b"opseal-web-vectors/" + name.encode()).digest(size)


def key(name: str) -> SigningKey:
    return SigningKey(seeded(name))


def hx(data: bytes) -> str:
    return data.hex()


def _chain(org: str, user: str, device: str) -> tuple[SigningKey, Certificate, Certificate]:
    root, identity = key(f"{org}/root"), key(f"{org}/{user}")
    user_cert = issue_user_certificate(
        root, organisation_id=org, user_id=user, user_kind="person", name=f"{user} of {org}",
        identity_key=identity.verify_key, issued_at=NOW - 86400, expires_at=NOW + YEAR,
        attributes={"unit": "Ports", "clearance": "ops"},
    )  # fmt: skip
    device_cert = issue_device_certificate(
        identity, user_cert, device_id=device, name=f"{device} laptop",
        signing_key=key(f"{org}/{device}").verify_key,
        hpke_key=HpkePrivateKey(seeded(f"{org}/{device}/hpke", 96)).public_key,
        issued_at=NOW - 3600, expires_at=NOW + YEAR,
    )  # fmt: skip
    return identity, user_cert, device_cert


def certificates() -> list[dict[str, Any]]:
    out = []
    for org, user, device in [("wco", "alice", "alice-1"), ("fr-customs", "jérôme", "jérôme-pc")]:
        _, user_cert, device_cert = _chain(org, user, device)
        out.append({
            "name": f"{org}/{device}", "organisation_id": org, "now": NOW,
            "root_key": hx(key(f"{org}/root").verify_key.raw),
            "user": hx(user_cert.to_bytes()), "device": hx(device_cert.to_bytes()),
            "user_fingerprint": user_cert.signing_key.fingerprint,
            "device_key_id": hx(device_cert.signing_key.key_id),
            "flip": ["user", "device"],
        })  # fmt: skip
    return out


def revocations() -> list[dict[str, Any]]:
    identity, user_cert, device_cert = _chain("wco", "alice", "alice-1")
    by_user = Revocation.issue(
        identity, organisation_id="wco", subject_id="alice-1",
        revoked_key=device_cert.signing_key, reason="laptop lost", revoked_at=NOW,
    )  # fmt: skip
    by_root = Revocation.issue(
        key("wco/root"), organisation_id="wco", subject_id="alice",
        revoked_key=user_cert.signing_key, reason="left the service", revoked_at=NOW + 5,
    )  # fmt: skip
    common = {"root_key": hx(key("wco/root").verify_key.raw), "flip": ["bytes"]}
    return [
        {"name": "device by its user", "bytes": hx(by_user.to_bytes()),
         "subject": hx(device_cert.to_bytes()), "user": hx(user_cert.to_bytes()), **common},
        {"name": "user by the root", "bytes": hx(by_root.to_bytes()),
         "subject": hx(user_cert.to_bytes()), "user": None, **common},
    ]  # fmt: skip


def enrolment_requests() -> list[dict[str, Any]]:
    request = EnrolmentRequest.create(
        key("customs-be/bob"), organisation_id="customs-be", user_id="bob", user_kind="person",
        name="Bob Peeters", device_id="bob-web", device_key=key("customs-be/bob-web").verify_key,
        hpke_key=HpkePrivateKey(seeded("customs-be/bob-web/hpke", 96)).public_key,
        now=NOW, lifetime=YEAR,
    )  # fmt: skip
    return [{"name": "browser device", "bytes": hx(request.to_bytes()),
             "fingerprint": request.fingerprint, "flip": ["bytes"]}]  # fmt: skip


def receipts() -> list[dict[str, Any]]:
    signer = key("wco/alice-1")
    message_id = uuid.UUID(bytes=seeded("message", 16))
    checkpoint = Checkpoint.sign("opseal-vectors", 7, seeded("root"), NOW, key("log").sign)
    common = dict(instance_id=INSTANCE, operation_id="op-tiger", area="customs",
                  message_id=message_id, device_id="alice-1", signed_at=NOW)  # fmt: skip
    made = {
        "ack with gossip": Receipt.create(
            signer, kind="ack", sender_device_id="jérôme-pc", **common,
            gossip=ReceiptGossip(12, seeded("authenticator"), checkpoint.to_bytes()),
        ),
        "read, no gossip": Receipt.create(
            signer, kind="read", sender_device_id="bob-web", **common
        ),
        "first encoding": Receipt.create(signer, kind="read", **common),
    }  # fmt: skip
    return [
        {"name": name, "bytes": hx(r.to_bytes()), "key": hx(signer.verify_key.raw),
         "encoding": r.encoding, "kind": r.kind, "sender_device_id": r.sender_device_id,
         "message_id": str(r.message_id), "flip": ["bytes"]}
        for name, r in made.items()
    ]  # fmt: skip


def logins() -> list[dict[str, Any]]:
    signer, challenge = key("wco/alice-1"), seeded("challenge")
    message = login_message(INSTANCE, "alice-1", challenge)
    return [{"name": "login proof", "instance_id": INSTANCE, "device_id": "alice-1",
             "challenge": hx(challenge), "message": hx(message), "key": hx(signer.verify_key.raw),
             "signature": hx(signer.sign(message)),
             "flip": ["challenge", "signature"]}]  # fmt: skip


def _charter_versions() -> tuple[Charter, Charter, Charter, Charter]:
    """Versions 1 to 3 of operation Tiger's charter, and a validly signed fork of version 2."""
    coordinator = key("wco/root")
    identity, user_cert, _ = _chain("wco", "alice", "alice-1")
    members = [
        Member("wco", "World Customs Organization", "customs", "coordinator",
               coordinator.verify_key, ("BE",)),
        Member("fr-customs", "Douane française", "customs", "customs",
               key("fr-customs/root").verify_key, ("FR", "GF")),
        Member("brandx", "Brand X", "company", "stakeholder", key("brandx/root").verify_key),
    ]  # fmt: skip
    areas = [
        AreaPolicy("general", frozenset({"coordinator", "customs", "stakeholder"}),
                   frozenset({"coordinator", "customs"})),
        AreaPolicy("customs", frozenset({"coordinator", "customs"}),
                   frozenset({"coordinator", "customs"}), "since-join"),
    ]  # fmt: skip
    v1 = Charter.create(
        operation_id="op-tiger", code="TIGER-26", name="Operation Tiger", starts_at=NOW,
        ends_at=NOW + 90 * 86400, members=members, areas=areas, issued_at=NOW - 600,
    ).signed(identity, user_cert)  # fmt: skip
    v2 = v1.next_version(issued_at=NOW - 300, name="Operation Tiger (extended)").signed(
        identity, user_cert
    )
    rotating = [*areas, AreaPolicy("alerts", frozenset({"coordinator"}),
                                   frozenset({"coordinator"}), rotation_period_s=7200)]  # fmt: skip
    v3 = v2.next_version(issued_at=NOW - 100, areas=rotating).signed(identity, user_cert)
    # A validly signed version 2 of another version 1 (a fork): only the hash link refuses it.
    other = replace(v1, issued_at=NOW - 700).signed(identity, user_cert)
    fork = other.next_version(issued_at=NOW - 300).signed(identity, user_cert)
    return v1, v2, v3, fork


def charters() -> list[dict[str, Any]]:
    v1, v2, v3, fork = _charter_versions()
    coordinator = key("wco/root")
    return [{
        "name": "three versions, encodings 2 and 3",
        "versions": [hx(v.to_bytes()) for v in (v1, v2, v3)],
        "encodings": [v.encoding for v in (v1, v2, v3)],
        "hashes": [hx(v.hash) for v in (v1, v2, v3)],
        "pinned_root_key_id": hx(coordinator.verify_key.key_id), "now": NOW,
        "latest_name": v3.name, "roles": {"brandx": "stakeholder", "fr-customs": "customs"},
        "refused": [{"name": "fork of another version 1", "versions": [hx(v1.to_bytes()),
                     hx(fork.to_bytes())], "error": "does not extend the chain"}],
        "flip": ["versions"],
    }]  # fmt: skip


def merkle() -> dict[str, list[dict[str, Any]]]:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(13)]
    inclusion = [
        {"leaf": hx(leaves[i]), "index": i, "size": size, "root": hx(root_hash(leaves[:size])),
         "proof": [hx(h) for h in inclusion_proof(leaves[:size], i)],
         "flip": ["leaf", "root", "proof"]}
        for size, i in [(1, 0), (2, 1), (7, 0), (7, 6), (8, 3), (13, 12), (13, 5)]
    ]  # fmt: skip
    consistency = [
        {"old_size": old, "new_size": new, "old_root": hx(root_hash(leaves[:old])),
         "new_root": hx(root_hash(leaves[:new])),
         "proof": [hx(h) for h in consistency_proof(leaves[:new], old)],
         "flip": ["old_root", "new_root", "proof"]}
        for old, new in [(1, 2), (3, 7), (4, 8), (6, 13), (7, 13), (12, 13)]
    ]  # fmt: skip
    log = key("log")
    checkpoint = Checkpoint.sign("opseal-vectors", 13, root_hash(leaves), NOW, log.sign)
    checkpoints = [{"bytes": hx(checkpoint.to_bytes()), "key": hx(log.verify_key.raw),
                    "size": 13, "root": hx(root_hash(leaves)), "flip": ["bytes"]}]  # fmt: skip
    return {"inclusion": inclusion, "consistency": consistency, "checkpoints": checkpoints,
            "roots": [{"size": n, "root": hx(root_hash(leaves[:n]))} for n in (0, 1, 5, 13)],
            "leaves": [hx(h) for h in leaves]}  # fmt: skip


def attachments() -> dict[str, Any]:
    """STREAM ciphertexts of chunk size 64 (the minimum) with their metadata, and broken
    streams: the final chunk dropped, two chunks swapped, a chunk appended after the final."""
    out = []
    for size in (0, 1, 64, 65, 200):
        draws = iter([seeded(f"file{size}/key"), seeded(f"file{size}/prefix", 7)]).__next__
        plaintext = seeded(f"file{size}/data", size) if size else b""
        sink = io.BytesIO()
        meta = encrypt_file(
            io.BytesIO(plaintext), sink, media_type="image/jpeg", file_name=f"seizure {size}.jpg",
            chunk_size=64, random_bytes=lambda n, draw=draws: draw(),
        )  # fmt: skip
        out.append({"name": f"{size} bytes", "plaintext": hx(plaintext),
                    "ciphertext": hx(sink.getvalue()), "meta": hx(meta.to_bytes()),
                    "meta_json": meta.to_json(), "key": hx(meta.file_key),
                    "flip": ["ciphertext"]})  # fmt: skip
    big = bytes.fromhex(out[-1]["ciphertext"])  # header (39 bytes), chunks of 80, 80, 80, 24
    head, body = big[:39], big[39:]
    chunks = [body[i : i + 80] for i in range(0, len(body), 80)]
    assert [len(c) for c in chunks] == [80, 80, 80, 24]
    broken = {
        "final chunk dropped": head + b"".join(chunks[:3]),
        "chunks 0 and 1 swapped": head + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "a chunk after the final one": big + chunks[1],
        "header only": head,
    }
    refused = [{"name": n, "ciphertext": hx(c), "key": out[-1]["key"]} for n, c in broken.items()]
    return {"files": out, "refused": refused}


def hpke() -> list[dict[str, Any]]:
    """Ciphertexts sealed by ``cryptography``'s HPKE to keys from fixed seeds. Sealing is
    randomised, so a ciphertext already in the committed file is kept while it still opens
    with its key and info to its plaintext; only a new or changed case is sealed afresh."""
    try:
        committed = json.loads(VECTORS.read_text(encoding="utf-8")).get("hpke", [])
    except (OSError, ValueError):
        committed = []
    kept = {(v["private_key"], v["info"], v["plaintext"]): v["ciphertext"] for v in committed}
    out = []
    cases = [("wco/alice-1", "message-key", b"epoch secret " * 3), ("fr/jerome", "welcome", b"")]
    for name, info_name, plaintext in cases:
        private = HpkePrivateKey(seeded(f"{name}/hpke", 96))
        info = label(f"test/{info_name}")
        ident = (hx(private.private_bytes()), hx(info), hx(plaintext))
        sealed = kept.get(ident)
        try:
            assert sealed is not None
            assert private.open(bytes.fromhex(sealed), info) == plaintext
        except (AssertionError, CryptoError, ValueError):
            sealed = hx(private.public_key.seal(plaintext, info))
        out.append({"name": f"to {name}, info {info_name}", "private_key": ident[0],
                    "public_key": hx(private.public_key.raw), "info": ident[1],
                    "plaintext": ident[2], "ciphertext": sealed,
                    "flip": ["ciphertext"]})  # fmt: skip
    return out


class EpochStub:
    """What open_envelope reads of a group state: context, roster look-up and hash. The group
    state itself (group.py) is not ported to TypeScript yet; its envelope checks are."""

    def __init__(self, area: str, epoch: int, roster: dict[str, tuple[str, SigningKey]]) -> None:
        self.instance_id, self.operation_id, self.area, self.epoch = (
            INSTANCE, "op-tiger", area, epoch,
        )  # fmt: skip
        self.hash = seeded(f"state/{area}/{epoch}")
        self._roster = roster

    def member(self, device_id: str) -> SimpleNamespace | None:
        entry = self._roster.get(device_id)
        if entry is None:
            return None
        return SimpleNamespace(organisation_id=entry[0], signing_key=entry[1].verify_key)


ENVELOPE_REFUSALS = [
    {"change": "area", "error": "ContextError"},
    {"change": "epoch", "error": "ContextError"},
    {"change": "instance", "error": "ContextError"},
    {"change": "roster without the sender", "error": "EnvelopeError"},
    {"change": "sender key", "error": "SignatureError"},
    {"change": "authenticator", "error": "ForkError"},
    {"change": "epoch secret", "error": "DecryptionError"},
]


def envelopes() -> list[dict[str, Any]]:
    """Envelopes sealed by opseal.crypto (deterministic: HKDF-derived key and nonce, Ed25519),
    with the epoch they open in and the changes of that epoch both suites refuse."""
    out = []
    cases = [
        ("customs", 3, "jérôme-pc", "fr-customs", "text", "H1", False, True, b'{"text":"hello"}'),
        ("general", 1, "alice-1", "wco", "seizure", "H2", True, False, b"seizure " * 40),
        ("general", 2, "alice-1", "wco", "alert", "H0", False, True, b""),
    ]
    for area, epoch, sender, org, content, handling, ack, second, plaintext in cases:
        signer, secret = key_of(org, sender), seeded(f"epoch/{area}/{epoch}")
        state = EpochStub(area, epoch, {sender: (org, signer)})
        authenticator = epoch_authenticator(secret, state)  # type: ignore[arg-type]
        header = Header(
            INSTANCE, "op-tiger", area, epoch, sender, 7 + epoch,
            uuid.UUID(bytes=seeded(f"msg/{area}/{epoch}", 16)), content, handling, ack,
            1_780_000_000_123, authenticator if second else b"",
        )  # fmt: skip
        envelope = seal(header, plaintext, secret, signer)
        out.append({"name": f"{content} in {area}, encoding {2 if second else 1}",
                    "bytes": hx(envelope.to_bytes()), "header": hx(header.encoded),
                    "plaintext": hx(plaintext), "epoch_secret": hx(secret),
                    "authenticator": hx(authenticator), "state_hash": hx(state.hash),
                    "instance_id": INSTANCE, "operation_id": "op-tiger", "area": area,
                    "epoch": epoch, "sender": sender, "organisation_id": org,
                    "sender_key": hx(signer.verify_key.raw), "counter": 7 + epoch,
                    "other_key": hx(key("intruder").verify_key.raw),
                    "refusals": [r for r in ENVELOPE_REFUSALS
                                 if second or r["change"] != "authenticator"],
                    "flip": ["bytes"]})  # fmt: skip
    return out


def replays() -> list[dict[str, Any]]:
    """Counters recorded in order by opseal.crypto's ReplayTracker: each step's outcome (ok or
    the error's class) and the sender's gaps afterwards."""
    tracker, steps = ReplayTracker(), []
    script = [("alice-1", c) for c in (1, 2, 5, 2, 4, 4, 10, 7, 3, 200_000, 11)]
    script += [("jérôme-pc", 1), ("jérôme-pc", 1), ("jérôme-pc", 100_001), ("jérôme-pc", 9)]
    for sender, counter in script:
        try:
            tracker.record("op-tiger", "general", sender, counter)
            outcome = "ok"
        except CryptoError as exc:
            outcome = type(exc).__name__
        gaps = tracker.gaps("op-tiger", "general", sender)
        steps.append({"sender": sender, "counter": counter, "outcome": outcome, "gaps": gaps})
    return steps


KEYFILE_PASSPHRASE = "correct horse ✓ battery"
COST = bytes.fromhex("000000010000010000000001")  # t=1, m=256 KiB, p=1 as encoded


def keyfiles() -> dict[str, Any]:
    """A device key sealed under a passphrase (light Argon2id cost: t=1, 256 KiB), kept while
    it still opens (salt and nonce are random), and changed copies both sides refuse."""
    secret, params = seeded("wco/alice-1"), KdfParams(1, 256, 1)
    try:
        kept = bytes.fromhex(json.loads(VECTORS.read_text(encoding="utf-8"))["keyfiles"]["file"])
        assert open_key_file(kept, KEYFILE_PASSPHRASE, purpose="device") == secret
    except (OSError, ValueError, KeyError, AssertionError, CryptoError):
        kept = seal_key_file(secret, KEYFILE_PASSPHRASE, purpose="device", params=params)
    head = len(kept) - 4 - 48  # the sealed field: 32 bytes and the 16-byte tag
    salt, nonce = head - 12 - 4 - 16, head - 12
    refused = {
        "salt": (flipped(kept, salt), "WrongPassphrase"),
        "nonce": (flipped(kept, nonce), "WrongPassphrase"),
        "sealed key": (flipped(kept, head + 10), "WrongPassphrase"),
        "tag": (flipped(kept, len(kept) - 1), "WrongPassphrase"),
        "time cost 0": (kept.replace(COST, bytes(4) + COST[4:], 1), "DecodeError"),
        "truncated": (kept[:-1], "DecodeError"),
    }
    return {"file": hx(kept), "secret": hx(secret), "passphrase": KEYFILE_PASSPHRASE,
            "purpose": "device",
            "refused": [{"name": n, "file": hx(f), "error": e}
                        for n, (f, e) in refused.items()]}  # fmt: skip


def key_of(org: str, device: str) -> SigningKey:
    return key(f"{org}/{device}")


def _identity(org: str, user: str, device: str) -> DeviceIdentity:
    _, user_cert, device_cert = _chain(org, user, device)
    return DeviceIdentity(
        user_cert,
        device_cert,
        key(f"{org}/{device}"),
        HpkePrivateKey(seeded(f"{org}/{device}/hpke", 96)),
    )


def _commits(v1: Charter) -> list[tuple[Commit, GroupState, bytes]]:
    """Area ``general`` (shared history) created by alice, jérôme added with the history of
    epoch 0, then removed; each epoch secret from a fixed seed."""
    alice, jerome = (
        _identity("wco", "alice", "alice-1"),
        _identity("fr-customs", "jérôme", "jérôme-pc"),
    )
    out = [create_area(v1, alice, instance_id=INSTANCE, area="general", now=NOW,
                       random=lambda n: seeded("secret/0"))]  # fmt: skip
    package = KeyPackage.create(jerome, operation_id="op-tiger", area="general", now=NOW + 5)
    out.append(create_commit(out[0][1], v1, alice, now=NOW + 10, adds=[package],
                             history={0: out[0][2]},
                             random=lambda n: seeded("secret/1")))  # fmt: skip
    out.append(create_commit(out[1][1], v1, alice, now=NOW + 20, removes=["jérôme-pc"],
                             random=lambda n: seeded("secret/2")))  # fmt: skip
    return out


def _replay_commits(v1: Charter, commits: list[bytes]) -> list[tuple[GroupState, bytes]]:
    """Apply ``commits`` in order as alice; the states and the secrets she opens."""
    alice = _identity("wco", "alice", "alice-1")
    state: GroupState | None = None
    out = []
    for raw in commits:
        commit = Commit.from_bytes(raw)
        state = apply_commit(state, commit, v1, now=NOW + 60, instance_id=INSTANCE)
        out.append((state, open_epoch_secret(commit, state, alice)))
    return out


def groups() -> list[dict[str, Any]]:
    """Commits are sealed with randomised HPKE: those in the committed file are kept while they
    still apply with today's rules to the same states and secrets; otherwise made afresh."""
    v1 = _charter_versions()[0]
    secrets = [seeded(f"secret/{i}") for i in range(3)]
    try:
        committed = json.loads(VECTORS.read_text(encoding="utf-8"))["groups"][0]["commits"]
        replayed = _replay_commits(v1, [bytes.fromhex(c) for c in committed])
        assert [s for _, s in replayed] == secrets
        commits = [bytes.fromhex(c) for c in committed]
    except (OSError, ValueError, KeyError, IndexError, AssertionError, CryptoError):
        commits = [c.to_bytes() for c, _, _ in _commits(v1)]
    states = [state for state, _ in _replay_commits(v1, commits)]
    alice, jerome = key("wco/alice-1"), key("fr-customs/jérôme-pc")

    def forged(signer: SigningKey, **changes: Any) -> str:
        draft = replace(Commit.from_bytes(commits[1]), **changes)
        return hx(replace(draft, signature=signer.sign(draft.to_be_signed())).to_bytes())

    refused = [
        ("roster hash", forged(alice, roster_hash=seeded("bad")), "roster hash does not match"),
        ("confirmation", forged(alice, confirmation=seeded("bad")), "confirmation"),
        ("committer not a member", forged(jerome, committer="jérôme-pc"), "not a member"),
    ]
    return [{
        "name": "create, add with history, remove", "charter": hx(v1.to_bytes()),
        "instance_id": INSTANCE, "now": NOW + 60, "commits": [hx(c) for c in commits],
        "states": [hx(s.to_bytes()) for s in states], "secrets": [hx(s) for s in secrets],
        "members": {"alice-1": hx(seeded("wco/alice-1/hpke", 96)),
                    "jérôme-pc": hx(seeded("fr-customs/jérôme-pc/hpke", 96))},
        "other_charter": hx(_charter_versions()[1].to_bytes()),
        "refused": [{"name": n, "commits": [hx(commits[0]), c], "error": e}
                    for n, c, e in refused],
        "flip": ["commits"],
    }]  # fmt: skip


def primitives() -> dict[str, Any]:
    w = Writer(label("test/encoding")).text("Zoll ✓").blob(b"\x00\xff").u8(7).u16(513)
    w.u32(70000).u64(2**64 - 1).bool(True).optional_bytes(None).optional_bytes(b"x")
    w.text_map({"b": "2", "a": "1", "é": "3"}).list(["x", "yy"], Writer.text)
    return {
        "writer": hx(w.finish()),
        "hkdf": [{"ikm": hx(seeded("ikm")), "info": hx(label("test/hkdf")), "salt": s,
                  "length": n, "okm": hx(hkdf_sha256(seeded("ikm"), label("test/hkdf"), n,
                                                     bytes.fromhex(s)))}
                 for s, n in [("", 32), ("0102", 42), ("", 80)]],
        "fingerprints": [{"digest": hx(seeded(f"fp{i}")),
                          "text": fingerprint_text(seeded(f"fp{i}"))} for i in range(3)],
        "base64url": [{"bytes": hx(seeded(f"b{i}", i)), "text": b64e(seeded(f"b{i}", i))}
                      for i in range(5)],
    }  # fmt: skip


# Edge cases of RFC 8032 verification where libraries disagree (small-order and mixed-order
# points, non-canonical encodings, S >= L): the ten cases of github.com/novifinancial/
# ed25519-speccheck (cases.json).
SPECCHECK = [  # message, public key, signature's R, signature's S
    (
        "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
    ),
    (
        "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
    ),
    (
        "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f",
        "87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed512",
        "5ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
    ),
    (
        "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
        "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
        "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7",
        "e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e",
        "547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
    ),
    (
        "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
        "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
        "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa1942",
        "7e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
    ),
    (
        "fdaebc429f4a735932a160da1301080c13280eea8bc280d1b392c6b9e6ba3a5a",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "454d370c8d9fc323a41450f8d513eafeb5b0697390c1e505a0d4ddc71f566607",
    ),
    (
        "84b698d39be126ff55fe45079e6c8bf64a0d7db6994560b4e96b7021eb39c1a1",
        "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "084d5b99c2a9463d9c8bd5026916996984eeec87ddf1d3be329006ace1b37b09",
    ),
]


def ed25519_edges() -> list[dict[str, Any]]:
    """Signatures on the edges of RFC 8032, each with the verdict of Python (OpenSSL), which
    the browser's verification (WebCrypto's and its own) must give too (design §17)."""
    p, order = 2**255 - 19, 2**252 + 27742317777372353535851937790883648493

    def le(n: int) -> bytes:
        return n.to_bytes(32, "little")

    signer, message = key("wco/alice-1"), b"opseal edge"
    good = signer.sign(message)
    s = int.from_bytes(good[32:], "little")
    b = bytes.fromhex
    cases = [(f"speccheck case {i}", b(m), b(k), b(r + s_))
             for i, (m, k, r, s_) in enumerate(SPECCHECK)]  # fmt: skip
    cases += [
        ("valid", message, signer.verify_key.raw, good),
        ("S + L", message, signer.verify_key.raw, good[:32] + le(s + order)),
        ("identity key, identity R, S = 0", message, le(1), le(1) + le(0)),
        ("identity key encoded with y = p + 1", message, le(p + 1), le(1) + le(0)),
        ("identity key with the sign bit set", message, le(1 | 1 << 255), le(1) + le(0)),
        ("identity R encoded with y = p + 1", message, le(1), le(p + 1) + le(0)),
    ]  # fmt: skip
    out = []
    for name, msg, raw, sig in cases:
        try:
            VerifyKey(raw).verify(sig, msg)
            valid = True
        except CryptoError:
            valid = False
        out.append({"name": name, "message": hx(msg), "key": hx(raw), "signature": hx(sig),
                    "valid": valid})  # fmt: skip
    return out


def malformed() -> list[dict[str, Any]]:
    """Bytes both decoders must refuse: each is a valid object broken in one way."""
    _, user_cert, _ = _chain("wco", "alice", "alice-1")
    good = user_cert.to_bytes()
    tbs = user_cert.to_be_signed()
    other_version = good.replace(b"opseal/v1/cert", b"opseal/v2/cert", 1)
    cases = {
        "truncated": good[:-1],
        "trailing byte": good + b"\x00",
        "other protocol version": other_version,
        "other label": good.replace(b"opseal/v1/cert", b"opseal/v1/cerx", 1),
        "signature of 63 bytes": tbs + (63).to_bytes(4, "big") + user_cert.signature[:63],
        "length beyond the end": good[:-68] + (0xFFFFFFFF).to_bytes(4, "big") + good[-64:],
    }
    bad_utf8 = Writer(label("cert")).blob(b"user").blob(b"\xff\xfe").finish()
    cases["text not UTF-8"] = bad_utf8
    return [{"type": "certificate", "name": n, "bytes": hx(b),
             "error": "UnsupportedVersion" if b is other_version else "DecodeError"}
            for n, b in cases.items()]  # fmt: skip


def build() -> dict[str, Any]:
    return {
        "about": "Generated by tests/web_vectors.py with opseal.crypto; do not edit by hand.",
        "flip_rule": "one bit (position % 8) at each of flip_positions(len): "
        "step max(1, len // 48), plus the last byte",
        "primitives": primitives(),
        "certificates": certificates(),
        "revocations": revocations(),
        "enrolment_requests": enrolment_requests(),
        "receipts": receipts(),
        "logins": logins(),
        "charters": charters(),
        "merkle": merkle(),
        "attachments": attachments(),
        "hpke": hpke(),
        "envelopes": envelopes(),
        "groups": groups(),
        "replays": replays(),
        "keyfiles": keyfiles(),
        "malformed": malformed(),
        "ed25519_edges": ed25519_edges(),
    }  # fmt: skip


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    VECTORS.write_text(render(), encoding="utf-8")
    print(f"wrote {VECTORS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
