"""The browser client's cross-language vectors, on the Python side (design §17).

The committed ``web/test/vectors.json`` must equal what ``tests/web_vectors.py`` writes now,
so the TypeScript suite always checks the current Python encodings; every signed vector is
refused by Python too when one bit is flipped; and the objects the TypeScript core produces
(``web/tools/produce.ts``, run with ``node``) verify here and equal Python's bytes.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from opseal.crypto import errors
from opseal.crypto.attachments import AttachmentDecryptor, FileMeta, decrypt_file
from opseal.crypto.certs import Certificate, EnrolmentRequest, Revocation, verify_device_chain
from opseal.crypto.charter import Charter, verify_charter_chain
from opseal.crypto.envelope import Envelope, open_envelope
from opseal.crypto.errors import CryptoError, UnsupportedVersion
from opseal.crypto.group import Commit, open_epoch_secret, open_history
from opseal.crypto.keys import HpkePrivateKey, VerifyKey, open_key_file
from opseal.crypto.merkle import Checkpoint, verify_consistency, verify_inclusion
from opseal.crypto.statements import Receipt, login_message

WEB = Path(__file__).resolve().parent.parent / "web"
PRODUCE = WEB / "build" / "tools" / "produce.js"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "web_vectors", Path(__file__).with_name("web_vectors.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
b = bytes.fromhex


def _refuses_every_flip(vector: dict[str, Any], check: Any) -> int:
    check(vector)
    flips = 0
    for name in vector["flip"]:
        value = vector[name]
        items = value if isinstance(value, list) else [value]
        for k, item in enumerate(items):
            data = b(item)
            for pos in GEN.flip_positions(len(data)):
                changed = GEN.flipped(data, pos).hex()
                new = [changed if j == k else x for j, x in enumerate(items)]
                copy = {**vector, name: new if isinstance(value, list) else changed}
                with pytest.raises(CryptoError):
                    check(copy)
                flips += 1
    return flips


def _chain(x: dict[str, Any]) -> None:
    user, device = Certificate.from_bytes(b(x["user"])), Certificate.from_bytes(b(x["device"]))
    verify_device_chain(
        device,
        user,
        VerifyKey(b(x["root_key"])),
        organisation_id=x["organisation_id"],
        now=x["now"],
    )


def _revocation(x: dict[str, Any]) -> None:
    user = Certificate.from_bytes(b(x["user"])) if x["user"] else None
    subject = Certificate.from_bytes(b(x["subject"]))
    Revocation.from_bytes(b(x["bytes"])).verify(
        VerifyKey(b(x["root_key"])), subject, user_cert=user
    )


def _request(x: dict[str, Any]) -> None:
    EnrolmentRequest.from_bytes(b(x["bytes"])).verify()


def _receipt(x: dict[str, Any]) -> None:
    Receipt.from_bytes(b(x["bytes"])).verify(VerifyKey(b(x["key"])))


def _login(x: dict[str, Any]) -> None:
    message = login_message(x["instance_id"], x["device_id"], b(x["challenge"]))
    VerifyKey(b(x["key"])).verify(b(x["signature"]), message)


def _charter(x: dict[str, Any]) -> None:
    versions = [Charter.from_bytes(b(h)) for h in x["versions"]]
    verify_charter_chain(versions, pinned_root_key_id=b(x["pinned_root_key_id"]), now=x["now"])


def _inclusion(x: dict[str, Any]) -> None:
    proof = [b(h) for h in x["proof"]]
    verify_inclusion(b(x["leaf"]), x["index"], x["size"], proof, b(x["root"]))


def _consistency(x: dict[str, Any]) -> None:
    proof = [b(h) for h in x["proof"]]
    verify_consistency(x["old_size"], x["new_size"], b(x["old_root"]), b(x["new_root"]), proof)


def _checkpoint(x: dict[str, Any]) -> None:
    Checkpoint.from_bytes(b(x["bytes"])).verify(VerifyKey(b(x["key"])).verify)


def _stream(x: dict[str, Any]) -> None:
    decryptor = AttachmentDecryptor(b(x["key"]))
    decryptor.update(b(x["ciphertext"]))
    decryptor.finalize()


def _hpke(x: dict[str, Any]) -> None:
    opened = HpkePrivateKey(b(x["private_key"])).open(b(x["ciphertext"]), b(x["info"]))
    assert opened == b(x["plaintext"])


class _Epoch:
    """The part of a group state open_envelope reads, from an envelope vector and a change."""

    def __init__(self, x: dict[str, Any], change: str = "") -> None:
        self.instance_id = x["instance_id"] + ("-other" if change == "instance" else "")
        self.operation_id = x["operation_id"]
        self.area = x["area"] + ("-other" if change == "area" else "")
        self.epoch = x["epoch"] + (1 if change == "epoch" else 0)
        key = x["other_key"] if change == "sender key" else x["sender_key"]
        self.roster = {} if change == "roster without the sender" else {x["sender"]: key}
        self.organisation_id = x["organisation_id"]

    def member(self, device_id: str) -> SimpleNamespace | None:
        key = self.roster.get(device_id)
        if key is None:
            return None
        return SimpleNamespace(organisation_id=self.organisation_id, signing_key=VerifyKey(b(key)))


def _envelope(x: dict[str, Any], change: str = "") -> bytes:
    secret = b(x["epoch_secret"])
    authenticator = b(x["authenticator"])
    if change == "epoch secret":
        secret = GEN.flipped(secret, 0)
    if change == "authenticator":
        authenticator = GEN.flipped(authenticator, 0)
    return open_envelope(
        Envelope.from_bytes(b(x["bytes"])),
        state=_Epoch(x, change),  # type: ignore[arg-type]
        epoch_secret=secret,
        authenticator=authenticator,
    )


def _group(x: dict[str, Any]) -> None:
    """Apply the commits in order and open each epoch secret as alice (the TypeScript suite
    also opens epoch 1 and the history of epoch 0 as jérôme)."""
    charter = Charter.from_bytes(b(x["charter"]))
    states = GEN._replay_commits(charter, [b(c) for c in x["commits"]])
    assert [s.to_bytes().hex() for s, _ in states] == x["states"]
    assert [secret.hex() for _, secret in states] == x["secrets"]


def test_vectors_are_current_and_python_refuses_every_flipped_bit() -> None:
    """The committed file is what the generator writes now (no drift), and each signed vector
    verifies intact and is refused with any of its flip-rule bits flipped."""
    assert (WEB / "test" / "vectors.json").read_text(encoding="utf-8") == GEN.render(), (
        "web/test/vectors.json is stale: run `.venv/bin/python tests/web_vectors.py`"
    )
    vectors = json.loads(GEN.render())
    merkle = vectors["merkle"]
    checks = [
        (vectors["certificates"], _chain), (vectors["revocations"], _revocation),
        (vectors["enrolment_requests"], _request), (vectors["receipts"], _receipt),
        (vectors["logins"], _login), (vectors["charters"], _charter),
        (merkle["inclusion"], _inclusion), (merkle["consistency"], _consistency),
        (merkle["checkpoints"], _checkpoint),
        (vectors["attachments"]["files"], _stream),
        (vectors["hpke"], _hpke),
        (vectors["envelopes"], _envelope),
        (vectors["groups"], _group),
    ]  # fmt: skip
    for refused in vectors["charters"][0]["refused"]:
        with pytest.raises(CryptoError, match=refused["error"]):
            _charter({**vectors["charters"][0], "versions": refused["versions"]})
    for refused in vectors["attachments"]["refused"]:
        with pytest.raises(CryptoError):
            _stream(refused)
    for case in vectors["envelopes"]:
        assert _envelope(case) == b(case["plaintext"])
        for refusal in case["refusals"]:
            with pytest.raises(getattr(errors, refusal["error"])):
                _envelope(case, refusal["change"])
    for refused in vectors["groups"][0]["refused"]:
        with pytest.raises(CryptoError, match=refused["error"]):
            _group({**vectors["groups"][0], "commits": refused["commits"]})
    keyfile = vectors["keyfiles"]
    opened = open_key_file(b(keyfile["file"]), keyfile["passphrase"], purpose="device")
    assert opened.hex() == keyfile["secret"]
    with pytest.raises(errors.WrongPassphrase):
        open_key_file(b(keyfile["file"]), keyfile["passphrase"] + "!", purpose="device")
    for refused in keyfile["refused"]:
        with pytest.raises(getattr(errors, refused["error"])):
            open_key_file(b(refused["file"]), keyfile["passphrase"], purpose="device")
    flips = sum(_refuses_every_flip(v, check) for group, check in checks for v in group)
    assert flips > 2000
    for case in vectors["malformed"]:
        error = UnsupportedVersion if case["error"] == "UnsupportedVersion" else CryptoError
        with pytest.raises(error):
            Certificate.from_bytes(b(case["bytes"]))


def test_objects_produced_in_typescript_verify_in_python() -> None:
    """Certificates, an enrolment request, receipts, a login proof and a checkpoint built by the
    TypeScript core verify with opseal.crypto and are byte for byte what Python builds."""
    node = shutil.which("node")
    if node is None or not PRODUCE.exists():
        pytest.skip("node or the web build is missing: `make web-test` builds it (make test does)")
    out = json.loads(subprocess.run([node, str(PRODUCE)], check=True, capture_output=True,
                                    text=True, timeout=60).stdout)  # fmt: skip
    vectors = json.loads(GEN.render())
    for made, ours in zip(out["certificates"], vectors["certificates"], strict=True):
        _chain({**ours, "user": made["user"], "device": made["device"]})
        assert (made["user"], made["device"]) == (ours["user"], ours["device"])
    request = EnrolmentRequest.from_bytes(b(out["enrolment_request"]["bytes"]))
    request.verify()
    assert request.fingerprint == out["enrolment_request"]["fingerprint"]
    assert out["enrolment_request"]["bytes"] == vectors["enrolment_requests"][0]["bytes"]
    signer = VerifyKey(b(vectors["receipts"][0]["key"]))
    for made, ours in zip(out["receipts"], vectors["receipts"][:2], strict=True):
        receipt = Receipt.from_bytes(b(made))
        receipt.verify(signer)
        assert receipt.encoding == 2
        assert receipt.message_id == uuid.UUID(ours["message_id"])
        assert made == ours["bytes"]
    _login({**vectors["logins"][0], **out["login"]})
    assert out["login"]["signature"] == vectors["logins"][0]["signature"]
    for made, ours in zip(out["attachments"], vectors["attachments"]["files"], strict=True):
        meta, sink = FileMeta.from_bytes(b(made["meta"])), io.BytesIO()
        decrypt_file(io.BytesIO(b(made["ciphertext"])), sink, meta)
        assert sink.getvalue().hex() == ours["plaintext"]
        assert (made["ciphertext"], made["meta"]) == (ours["ciphertext"], ours["meta"])
    _checkpoint({**vectors["merkle"]["checkpoints"][0], "bytes": out["checkpoint"]})
    group = vectors["groups"][0]
    commits = [b(c) for c in out["commits"]]
    states = GEN._replay_commits(Charter.from_bytes(b(group["charter"])), commits)
    assert [secret.hex() for _, secret in states] == group["secrets"]
    assert [state.to_bytes().hex() for state, _ in states] == group["states"]
    jerome, joined = (
        GEN._identity("fr-customs", "jérôme", "jérôme-pc"),
        Commit.from_bytes(commits[1]),
    )
    assert open_epoch_secret(joined, states[1][0], jerome).hex() == group["secrets"][1]
    assert open_history(joined, states[1][0], jerome) == {0: b(group["secrets"][0])}
    sealed = b(out["keyfile"])
    assert (
        open_key_file(sealed, vectors["keyfiles"]["passphrase"], purpose="device").hex()
        == (vectors["keyfiles"]["secret"])
    )
    charters = vectors["charters"][0]
    _charter({**charters, "versions": out["charters"]})
    assert out["charters"] == charters["versions"][:2]
    for made, ours in zip(out["envelopes"], vectors["envelopes"], strict=True):
        assert _envelope({**ours, "bytes": made}) == b(ours["plaintext"])
        assert made == ours["bytes"]
    for made, ours in zip(out["hpke"], vectors["hpke"], strict=True):
        _hpke({**ours, "ciphertext": made})
        assert made != ours["ciphertext"]  # sealed afresh in TypeScript
    assert out["checkpoint"] == vectors["merkle"]["checkpoints"][0]["bytes"]
