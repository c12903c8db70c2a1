"""A self-demo of the crypto core: two organisations, a charter, an area, a commit, a message
and an attachment, plus what an outsider and a tampering server run into.

Run with ``python -m opseal.crypto.demo`` (``make demo``). Exits 0 only when every outcome
held. It is the only module of :mod:`opseal.crypto` that prints or reads the clock.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from .attachments import FileMeta, decrypt_file, encrypt_file
from .certs import issue_user_certificate
from .charter import AreaPolicy, Charter, Member, verify_charter_chain
from .envelope import Envelope, Header, ReplayTracker, open_envelope, seal
from .errors import CryptoError, PolicyError, ReplayError, SignatureError
from .group import (
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
    open_epoch_secret,
)
from .keys import SigningKey
from .merkle import Checkpoint, inclusion_proof, leaf_hash, root_hash, verify_inclusion

INSTANCE = "opseal-demo"
YEAR = 365 * 86400


class Demo:
    """Plays the scenario and keeps score of the outcomes."""

    def __init__(self, now: int, out: Callable[[str], None]) -> None:
        self.now, self.out, self.failures = now, out, 0
        self.roots = {org: SigningKey.generate() for org in ("wco", "fr-customs", "brandx")}
        self.log: list[bytes] = []

    def check(self, ok: bool, what: str) -> None:
        self.out(f"  [{'ok' if ok else 'FAILED'}] {what}")
        self.failures += 0 if ok else 1

    def refused(self, error: type[CryptoError], action: Callable[[], object], what: str) -> None:
        try:
            action()
        except error as exc:
            self.check(True, f"{what}: refused ({type(exc).__name__}: {exc})")
        else:
            self.check(False, f"{what}: was NOT refused")

    def audit(self, event: str, **fields: object) -> None:
        self.log.append(json.dumps({"event": event, **fields}, sort_keys=True).encode())

    def device(self, org: str, user_id: str, device_id: str) -> DeviceIdentity:
        user_key = SigningKey.generate()
        user_cert = issue_user_certificate(
            self.roots[org],
            organisation_id=org,
            user_id=user_id,
            user_kind="person",
            name=user_id,
            identity_key=user_key.verify_key,
            issued_at=self.now,
            expires_at=self.now + YEAR,
        )
        identity = DeviceIdentity.generate(
            user_key,
            user_cert,
            device_id=device_id,
            name=device_id,
            issued_at=self.now,
            expires_at=self.now + YEAR,
        )
        self.audit("device-certified", org=org, device=device_id)
        return identity

    def run(self) -> int:
        self.out("1. Organisations create root keys and exchange fingerprints out of band")
        for org, key in self.roots.items():
            self.out(f"  {org:<11} root fingerprint {key.verify_key.fingerprint}")
        ocu = self.device("wco", "ocu-lead", "wco-laptop")
        marie = self.device("fr-customs", "marie", "fr-marie-phone")
        brand = self.device("brandx", "alice", "brandx-laptop")

        charter = self.publish_charter(ocu)
        state, secret = self.build_area(charter, ocu, marie, brand)
        envelope, meta = self.post_seizure(state, secret, marie)
        self.read_seizure(charter, state, secret, envelope, meta)
        self.verify_audit()
        self.out("")
        self.out(
            "All outcomes held." if not self.failures else f"{self.failures} outcome(s) failed."
        )
        return 0 if not self.failures else 1

    def publish_charter(self, ocu: DeviceIdentity) -> Charter:
        self.out("2. The coordinator signs charter version 1 of 'Operation STOP V'")
        lead_key = SigningKey.generate()
        lead = issue_user_certificate(
            self.roots["wco"],
            organisation_id="wco",
            user_id="ocu-lead-id",
            user_kind="person",
            name="OCU lead",
            identity_key=lead_key.verify_key,
            issued_at=self.now,
            expires_at=self.now + YEAR,
        )
        members = [
            Member(
                "wco",
                "World Customs Organization",
                "secretariat",
                "coordinator",
                self.roots["wco"].verify_key,
            ),
            Member(
                "fr-customs",
                "French Customs",
                "customs-administration",
                "customs",
                self.roots["fr-customs"].verify_key,
            ),
            Member(
                "brandx", "Brand X", "rights-holder", "stakeholder", self.roots["brandx"].verify_key
            ),
        ]
        areas = [
            AreaPolicy(
                "seizures",
                frozenset({"coordinator", "customs"}),
                frozenset({"coordinator", "customs"}),
                "since-join",
            ),
            AreaPolicy(
                "stakeholders",
                frozenset({"coordinator", "customs", "stakeholder"}),
                frozenset({"coordinator", "stakeholder"}),
                "shared",
            ),
        ]
        charter = Charter.create(
            operation_id="op-stop-v",
            code="STOP V",
            name="Operation STOP V",
            starts_at=self.now,
            ends_at=self.now + 19 * 86400,
            members=members,
            areas=areas,
            issued_at=self.now,
        ).signed(lead_key, lead)
        self.audit("charter-published", version=1, hash=charter.hash.hex())
        pinned = self.roots["wco"].verify_key.key_id
        verify_charter_chain([charter], pinned_root_key_id=pinned, now=self.now)
        self.check(True, "French Customs verifies the charter from the pinned WCO fingerprint")
        return charter

    def build_area(
        self, charter: Charter, ocu: DeviceIdentity, marie: DeviceIdentity, brand: DeviceIdentity
    ) -> tuple[GroupState, bytes]:
        self.out("3. The coordinator creates the customs-only area 'seizures' (epoch 0)")
        create, state0, _ = create_area(
            charter, ocu, instance_id=INSTANCE, area="seizures", now=self.now
        )
        self.audit("commit", area="seizures", epoch=0)
        self.out("4. French Customs' device posts a key package; the coordinator admits it")
        package = KeyPackage.create(marie, operation_id="op-stop-v", area="seizures", now=self.now)
        commit, state1, secret = create_commit(state0, charter, ocu, now=self.now, adds=[package])
        self.audit("commit", area="seizures", epoch=1, added=marie.device_id)
        received = apply_commit(
            apply_commit(None, create, charter, now=self.now, instance_id=INSTANCE),
            commit,
            charter,
            now=self.now,
        )
        mine = open_epoch_secret(commit, received, marie)
        self.check(
            received == state1 and mine == secret,
            f"Marie's phone validates the commit: epoch 1, {len(state1.roster)} devices",
        )
        brand_package = KeyPackage.create(
            brand, operation_id="op-stop-v", area="seizures", now=self.now
        )
        self.refused(
            PolicyError,
            lambda: create_commit(state1, charter, ocu, now=self.now, adds=[brand_package]),
            "Admitting the rights holder's device to 'seizures'",
        )
        return state1, secret

    def post_seizure(
        self, state: GroupState, secret: bytes, marie: DeviceIdentity
    ) -> tuple[Envelope, FileMeta]:
        self.out("5. Marie posts a seizure report with an encrypted photo")
        photo = b"\xff\xd8\xff\xe0 demo JPEG bytes " * 4096
        blob = io.BytesIO()
        meta = encrypt_file(
            io.BytesIO(photo), blob, media_type="image/jpeg", file_name="parcel-0412.jpg"
        )
        self.blob = blob.getvalue()
        self.audit("blob-uploaded", sha256=meta.ciphertext_sha256.hex(), size=meta.ciphertext_size)
        record = {
            "record_id": "FR-2026-0412",
            "seizure_date": "2026-11-23",
            "transport_mode": "postal",
            "goods": [{"category": "medicines", "quantity_items": 1200, "weight_kg": 2.4}],
            "photos": [meta.to_json()],
        }
        header = Header(
            INSTANCE,
            "op-stop-v",
            "seizures",
            state.epoch,
            marie.device_id,
            1,
            uuid.uuid4(),
            "seizure",
            "H1",
            False,
            self.now * 1000,
        )
        envelope = seal(header, json.dumps(record).encode(), secret, marie.signing_key)
        self.audit("message-posted", area="seizures", message=str(header.message_id))
        wire = envelope.to_bytes()
        self.check(
            b"FR-2026-0412" not in wire and photo[:16] not in self.blob,
            f"the server stores {len(wire)} bytes of envelope and {len(self.blob)} of blob, "
            "no plaintext",
        )
        return envelope, meta

    def read_seizure(
        self,
        charter: Charter,
        state: GroupState,
        secret: bytes,
        envelope: Envelope,
        meta: FileMeta,
    ) -> None:
        self.out("6. The coordinator reads it and opens the photo")
        tracker = ReplayTracker()
        plain = open_envelope(
            envelope, state=state, epoch_secret=secret, charter=charter, tracker=tracker
        )
        record = json.loads(plain)
        photo = io.BytesIO()
        decrypt_file(io.BytesIO(self.blob), photo, FileMeta.from_json(record["photos"][0]))
        self.check(
            record["goods"][0]["quantity_items"] == 1200
            and photo.getvalue()[:4] == b"\xff\xd8\xff\xe0",
            f"seizure {record['record_id']} and its {meta.size}-byte photo decrypt and verify",
        )
        self.refused(
            ReplayError,
            lambda: open_envelope(envelope, state=state, epoch_secret=secret, tracker=tracker),
            "The server replaying the same message",
        )
        forged = replace(envelope, header=replace(envelope.header, handling="H0"))
        self.refused(
            SignatureError,
            lambda: open_envelope(forged, state=state, epoch_secret=secret),
            "The server relabelling its handling code",
        )

    def verify_audit(self) -> None:
        self.out("7. The audit log: a signed checkpoint and an inclusion proof")
        log_key = SigningKey.generate()
        leaves = [leaf_hash(entry) for entry in self.log]
        checkpoint = Checkpoint.sign(
            INSTANCE, len(leaves), root_hash(leaves), self.now, log_key.sign
        )
        checkpoint.verify(lambda sig, msg: log_key.verify_key.verify(sig, msg))
        index = len(leaves) - 1
        verify_inclusion(
            leaves[index], index, checkpoint.size, inclusion_proof(leaves, index), checkpoint.root
        )
        self.check(True, f"{checkpoint.size} audit entries; the last one is proven included")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opseal.crypto.demo", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")
    args = parser.parse_args(argv)
    demo = Demo(int(time.time()), (lambda _: None) if args.quiet else print)
    try:
        code = demo.run()
    except CryptoError as exc:
        print(f"demo: an outcome failed with {type(exc).__name__}: {exc}")
        return 1
    if args.quiet:
        print("demo: all outcomes held" if code == 0 else "demo: FAILED")
    return code


if __name__ == "__main__":
    sys.exit(main())
