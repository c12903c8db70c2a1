/**
 * Checks every cross-language vector of test/vectors.json (written by tests/web_vectors.py with
 * the Python crypto core): decode, re-encode byte for byte, verify; and a flipped bit at each
 * position of the flip rule is refused.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { FileMeta, decryptAttachment, decryptStream, encryptAttachment } from "../src/attachments.js";
import { Certificate, EnrolmentRequest, Revocation, verifyDeviceChain } from "../src/certs.js";
import { Charter, verifyCharterChain } from "../src/charter.js";
import * as errors from "../src/errors.js";
import { CryptoError, UnsupportedVersion } from "../src/errors.js";
import { Envelope, type EpochView, Header, ReplayTracker, epochAuthenticator, openEnvelope, seal } from "../src/envelope.js";
import { Reader, Writer, b64d, b64e, fromHex, hex, label, lengthPrefixed } from "../src/encoding.js";
import { Commit, GroupState, applyCommit, openEpochSecret, openHistory } from "../src/group.js";
import { openKeyFile, sealKeyFile } from "../src/keyfile.js";
import { ENC_SIZE, HpkePrivateKey, HpkePublicKey } from "../src/hpke.js";
import { SigningKey, VerifyKey, fingerprintText, hkdfSha256 } from "../src/keys.js";
import { Checkpoint, EMPTY_ROOT, rootHash, verifyConsistency, verifyInclusion } from "../src/merkle.js";
import { Receipt, loginMessage } from "../src/statements.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const V: Json = JSON.parse(readFileSync(new URL("../../test/vectors.json", import.meta.url), "utf-8"));
export const counts: Record<string, number> = {};

function flipPositions(length: number): number[] {
  const step = Math.max(1, Math.floor(length / 48));
  const out = new Set<number>([length - 1]);
  for (let i = 0; i < length; i += step) out.add(i);
  return [...out].sort((a, b) => a - b);
}

function flipped(data: Uint8Array, position: number): Uint8Array {
  const out = Uint8Array.from(data);
  out[position]! ^= 1 << (position % 8);
  return out;
}

/** For each field named in `flip`, flip each position of its bytes and expect a CryptoError. */
function refusesEveryFlip(vector: Json, check: (v: Json) => void): number {
  check(vector); // the intact vector passes
  let flips = 0;
  for (const field of vector.flip as string[]) {
    const value = vector[field];
    const items: string[] = Array.isArray(value) ? value : [value];
    items.forEach((item, k) => {
      const bytes = fromHex(item);
      for (const pos of flipPositions(bytes.length)) {
        const changed = hex(flipped(bytes, pos));
        const copy = { ...vector, [field]: Array.isArray(value) ? items.map((x, j) => (j === k ? changed : x)) : changed };
        assert.throws(() => check(copy), CryptoError, `${field}[${k}] bit flipped at ${pos} was accepted`);
        flips++;
      }
    });
  }
  return flips;
}

/** As refusesEveryFlip, for a check that returns a promise (the envelope's WebCrypto path). */
async function refusesEveryFlipAsync(vector: Json, check: (v: Json) => Promise<void>): Promise<number> {
  await check(vector);
  let flips = 0;
  for (const field of vector.flip as string[]) {
    const value = vector[field];
    const items: string[] = Array.isArray(value) ? value : [value];
    for (const [k, item] of items.entries()) {
      const bytes = fromHex(item);
      for (const pos of flipPositions(bytes.length)) {
        const changed = hex(flipped(bytes, pos));
        const copy = { ...vector, [field]: Array.isArray(value) ? items.map((x, j) => (j === k ? changed : x)) : changed };
        await assert.rejects(() => check(copy), CryptoError, `${field}[${k}] bit flipped at ${pos} was accepted`);
        flips++;
      }
    }
  }
  return flips;
}

function count(kind: string, n = 1): void {
  counts[kind] = (counts[kind] ?? 0) + n;
}

test("primitives: writer, HKDF, fingerprints, base64url", () => {
  const w = new Writer(label("test/encoding")).text("Zoll ✓").blob(Uint8Array.of(0, 255)).u8(7).u16(513);
  w.u32(70000).u64((1n << 64n) - 1n).bool(true).optionalBytes(null).optionalBytes(Uint8Array.of(0x78));
  w.textMap(new Map([["b", "2"], ["a", "1"], ["é", "3"]])).list(["x", "yy"], (x, s) => x.text(s));
  assert.equal(hex(w.finish()), V.primitives.writer);
  const r = new Reader(fromHex(V.primitives.writer), label("test/encoding"));
  assert.equal(r.text(), "Zoll ✓");
  assert.deepEqual([...r.blob()], [0, 255]);
  assert.deepEqual([r.u8(), r.u16(), r.u32(), r.u64(), r.bool()], [7, 513, 70000, (1n << 64n) - 1n, true]);
  assert.equal(r.optionalBytes(), null);
  assert.equal(hex(r.optionalBytes()!), "78");
  assert.deepEqual([...r.textMap()], [["a", "1"], ["b", "2"], ["é", "3"]]);
  assert.deepEqual(r.list((x) => x.text()), ["x", "yy"]);
  r.finish();
  count("primitives");
  for (const v of V.primitives.hkdf) {
    assert.equal(hex(hkdfSha256(fromHex(v.ikm), fromHex(v.info), v.length, fromHex(v.salt))), v.okm);
    count("primitives");
  }
  for (const v of V.primitives.fingerprints) {
    assert.equal(fingerprintText(fromHex(v.digest)), v.text);
    count("primitives");
  }
  for (const v of V.primitives.base64url) {
    assert.equal(b64e(fromHex(v.bytes)), v.text);
    assert.equal(hex(b64d(v.text)), v.bytes);
    count("primitives");
  }
  assert.throws(() => b64d("AB=="), CryptoError);
  assert.throws(() => b64d("AB"), CryptoError, "non-canonical trailing bits");
});

test("certificate chains verify, re-encode byte for byte, and refuse every flipped bit", () => {
  for (const v of V.certificates) {
    const check = (x: Json): void => {
      const user = Certificate.fromBytes(fromHex(x.user));
      const device = Certificate.fromBytes(fromHex(x.device));
      verifyDeviceChain(device, user, new VerifyKey(fromHex(x.root_key)), {
        organisationId: x.organisation_id,
        now: BigInt(x.now),
      });
    };
    const user = Certificate.fromBytes(fromHex(v.user));
    const device = Certificate.fromBytes(fromHex(v.device));
    assert.equal(hex(user.toBytes()), v.user);
    assert.equal(hex(device.toBytes()), v.device);
    assert.equal(user.signingKey.fingerprint, v.user_fingerprint);
    assert.equal(hex(device.signingKey.keyId), v.device_key_id);
    const root = new VerifyKey(fromHex(v.root_key));
    const ctx = { organisationId: v.organisation_id, now: BigInt(v.now) };
    assert.throws(() => verifyDeviceChain(device, user, root, { ...ctx, now: BigInt(v.now) + 400n * 86400n }), CryptoError);
    assert.throws(() => verifyDeviceChain(device, user, root, { ...ctx, organisationId: "other" }), CryptoError);
    const revoked = new Set([hex(device.signingKey.keyId)]);
    assert.throws(() => verifyDeviceChain(device, user, root, { ...ctx, revoked }), /revoked/);
    count("certificates");
    count("flips", refusesEveryFlip(v, check));
  }
});

test("revocations and enrolment requests", () => {
  for (const v of V.revocations) {
    const check = (x: Json): void => {
      const rev = Revocation.fromBytes(fromHex(x.bytes));
      assert.equal(hex(rev.toBytes()), x.bytes);
      const subject = Certificate.fromBytes(fromHex(x.subject));
      rev.verify(new VerifyKey(fromHex(x.root_key)), subject, x.user ? Certificate.fromBytes(fromHex(x.user)) : undefined);
    };
    count("revocations");
    count("flips", refusesEveryFlip(v, check));
  }
  for (const v of V.enrolment_requests) {
    const check = (x: Json): void => {
      const request = EnrolmentRequest.fromBytes(fromHex(x.bytes));
      assert.equal(hex(request.toBytes()), x.bytes);
      request.verify();
      assert.equal(request.fingerprint, v.fingerprint);
    };
    count("enrolment_requests");
    count("flips", refusesEveryFlip(v, check));
  }
});

test("receipts of both encodings and login proofs", () => {
  for (const v of V.receipts) {
    const check = (x: Json): void => {
      const receipt = Receipt.fromBytes(fromHex(x.bytes));
      receipt.verify(new VerifyKey(fromHex(x.key)));
    };
    const receipt = Receipt.fromBytes(fromHex(v.bytes));
    assert.equal(hex(receipt.toBytes()), v.bytes);
    assert.equal(receipt.encoding, v.encoding);
    assert.equal(receipt.kind, v.kind);
    assert.equal(receipt.senderDeviceId, v.sender_device_id);
    assert.equal(hex(receipt.messageId), v.message_id.replace(/-/g, ""));
    if (receipt.gossip) Checkpoint.fromBytes(receipt.gossip.checkpoint);
    count("receipts");
    count("flips", refusesEveryFlip(v, check));
  }
  for (const v of V.logins) {
    const check = (x: Json): void => {
      const message = loginMessage(x.instance_id, x.device_id, fromHex(x.challenge));
      new VerifyKey(fromHex(x.key)).verify(fromHex(x.signature), message, "login proof");
    };
    assert.equal(hex(loginMessage(v.instance_id, v.device_id, fromHex(v.challenge))), v.message);
    count("logins");
    count("flips", refusesEveryFlip(v, check));
  }
});

test("charter chains verify from the pinned root and refuse every flipped bit", () => {
  for (const v of V.charters) {
    const check = (x: Json): Charter => {
      const versions = (x.versions as string[]).map((h) => Charter.fromBytes(fromHex(h)));
      return verifyCharterChain(versions, fromHex(x.pinned_root_key_id), BigInt(x.now));
    };
    const latest = check(v);
    assert.equal(latest.name, v.latest_name);
    const versions = (v.versions as string[]).map((h) => Charter.fromBytes(fromHex(h)));
    versions.forEach((c, i) => {
      assert.equal(hex(c.toBytes()), v.versions[i]);
      assert.equal(hex(c.hash), v.hashes[i]);
      assert.equal(c.encoding, v.encodings[i]);
    });
    for (const [org, role] of Object.entries(v.roles)) assert.equal(latest.roleOf(org), role);
    assert.equal(latest.mayRead("stakeholder", "customs"), false);
    assert.throws(() => check({ ...v, pinned_root_key_id: "00".repeat(32) }), /pinned/);
    assert.throws(() => check({ ...v, versions: v.versions.slice(1) }), /version 1/);
    assert.throws(() => check({ ...v, versions: [v.versions[0], v.versions[2]] }), CryptoError);
    assert.throws(() => check({ ...v, now: v.now - 10000 }), /future/);
    for (const refused of v.refused) {
      assert.throws(() => check({ ...v, versions: refused.versions }), new RegExp(refused.error), refused.name);
      count("charters");
    }
    count("charters");
    count("flips", refusesEveryFlip(v, check));
  }
});

test("Merkle roots, inclusion and consistency proofs, checkpoints", () => {
  const M = V.merkle;
  const leaves = (M.leaves as string[]).map(fromHex);
  assert.equal(hex(rootHash([])), hex(EMPTY_ROOT));
  for (const v of M.roots) {
    assert.equal(hex(rootHash(leaves.slice(0, v.size))), v.root);
    count("merkle");
  }
  for (const v of M.inclusion) {
    const check = (x: Json): void =>
      verifyInclusion(fromHex(x.leaf), BigInt(x.index), BigInt(x.size), x.proof.map(fromHex), fromHex(x.root));
    assert.throws(() => check({ ...v, index: v.size }), CryptoError);
    if (v.proof.length) assert.throws(() => check({ ...v, proof: v.proof.slice(1) }), CryptoError);
    assert.throws(() => check({ ...v, proof: [...v.proof, v.root] }), CryptoError);
    count("merkle");
    count("flips", refusesEveryFlip(v, check));
  }
  for (const v of M.consistency) {
    const check = (x: Json): void =>
      verifyConsistency(BigInt(x.old_size), BigInt(x.new_size), fromHex(x.old_root), fromHex(x.new_root), x.proof.map(fromHex));
    assert.throws(() => check({ ...v, proof: v.proof.slice(0, -1) }), CryptoError);
    count("merkle");
    count("flips", refusesEveryFlip(v, check));
  }
  for (const v of M.checkpoints) {
    const check = (x: Json): void => {
      const cp = Checkpoint.fromBytes(fromHex(x.bytes));
      cp.verify((sig, msg) => new VerifyKey(fromHex(x.key)).verify(sig, msg));
    };
    const cp = Checkpoint.fromBytes(fromHex(v.bytes));
    assert.equal(hex(cp.toBytes()), v.bytes);
    assert.equal(cp.size, BigInt(v.size));
    assert.equal(hex(cp.root), v.root);
    count("merkle");
    count("flips", refusesEveryFlip(v, check));
  }
});

test("STREAM attachments: decrypt, re-encrypt byte for byte, refuse broken streams", () => {
  for (const v of V.attachments.files) {
    const meta = FileMeta.fromBytes(fromHex(v.meta));
    assert.equal(hex(meta.toBytes()), v.meta);
    assert.equal(meta.fileName, v.meta_json.file_name);
    assert.equal(meta.size, BigInt(v.meta_json.size));
    assert.equal(hex(decryptAttachment(fromHex(v.ciphertext), meta)), v.plaintext);
    const again = encryptAttachment(fromHex(v.plaintext), {
      mediaType: meta.mediaType, fileName: meta.fileName, chunkSize: 64, fileKey: meta.fileKey,
      noncePrefix: fromHex(v.ciphertext).slice(32, 39),
    });
    assert.equal(hex(again.ciphertext), v.ciphertext);
    assert.equal(hex(again.meta.toBytes()), v.meta);
    const tampered = flipped(fromHex(v.ciphertext), fromHex(v.ciphertext).length - 1);
    assert.throws(() => decryptAttachment(tampered, meta), /SHA-256 differs/);
    const check = (x: Json): void => void decryptStream(fromHex(x.ciphertext), fromHex(x.key));
    count("attachments");
    count("flips", refusesEveryFlip(v, check));
  }
  for (const v of V.attachments.refused) {
    assert.throws(() => decryptStream(fromHex(v.ciphertext), fromHex(v.key)), CryptoError, v.name);
    count("attachments");
  }
});

test("HPKE (X-Wing, HKDF-SHA256, AES-256-GCM): open what cryptography sealed, refuse flipped bits", () => {
  for (const v of V.hpke) {
    const key = new HpkePrivateKey(fromHex(v.private_key));
    assert.equal(hex(key.publicKey.raw), v.public_key);
    const check = (x: Json): void => {
      const opened = key.open(fromHex(x.ciphertext), fromHex(x.info));
      if (hex(opened) !== x.plaintext) throw new CryptoError("opened to another plaintext");
    };
    assert.throws(() => key.open(fromHex(v.ciphertext), fromHex(v.info).slice(1)), CryptoError, "other info");
    assert.equal(fromHex(v.ciphertext).length, ENC_SIZE + fromHex(v.plaintext).length + 16);
    const again = new HpkePublicKey(fromHex(v.public_key)).seal(fromHex(v.plaintext), fromHex(v.info));
    assert.equal(hex(key.open(again, fromHex(v.info))), v.plaintext);
    count("hpke");
    count("flips", refusesEveryFlip(v, check));
  }
});

function epochView(x: Json, change = ""): EpochView {
  const key = new VerifyKey(fromHex(change === "sender key" ? x.other_key : x.sender_key));
  const authenticator = fromHex(x.authenticator);
  return {
    instanceId: x.instance_id + (change === "instance" ? "-other" : ""),
    operationId: x.operation_id,
    area: x.area + (change === "area" ? "-other" : ""),
    epoch: BigInt(x.epoch) + (change === "epoch" ? 1n : 0n),
    member: (device) =>
      change !== "roster without the sender" && device === x.sender
        ? { signingKey: key, organisationId: x.organisation_id }
        : undefined,
    authenticator: change === "authenticator" ? flipped(authenticator, 0) : authenticator,
  };
}

async function openVector(x: Json, change = ""): Promise<Uint8Array> {
  const secret = fromHex(x.epoch_secret);
  return openEnvelope(Envelope.fromBytes(fromHex(x.bytes)), epochView(x, change), change === "epoch secret" ? flipped(secret, 0) : secret);
}

test("envelopes: open what Python sealed, seal the same bytes, refuse a changed epoch and every flipped bit", async () => {
  for (const v of V.envelopes) {
    const envelope = Envelope.fromBytes(fromHex(v.bytes));
    assert.equal(hex(envelope.toBytes()), v.bytes);
    assert.equal(hex(envelope.header.encoded), v.header);
    assert.equal(hex(Header.fromBytes(fromHex(v.header)).encoded), v.header);
    assert.equal(envelope.header.counter, BigInt(v.counter));
    assert.equal(hex(epochAuthenticator(fromHex(v.epoch_secret), fromHex(v.state_hash))), v.authenticator);
    assert.equal(hex(await openVector(v)), v.plaintext);
    const resealed = seal(envelope.header, fromHex(v.plaintext), fromHex(v.epoch_secret), new SigningKey(new Uint8Array(32)));
    assert.equal(hex(resealed.ciphertext), hex(envelope.ciphertext));
    for (const refusal of v.refusals) {
      const kind = (errors as Record<string, unknown>)[refusal.error] as new () => Error;
      await assert.rejects(() => openVector(v, refusal.change), kind, refusal.change);
      count("envelopes");
    }
    count("envelopes");
    count("flips", await refusesEveryFlipAsync(v, async (x: Json) => void (await openVector(x))));
  }
});

function replayCommits(x: Json, charterHex = x.charter): GroupState[] {
  const charter = Charter.fromBytes(fromHex(charterHex));
  const alice = new HpkePrivateKey(fromHex(x.members["alice-1"]));
  let state: GroupState | null = null;
  const states: GroupState[] = [];
  for (const [i, raw] of (x.commits as string[]).entries()) {
    const commit = Commit.fromBytes(fromHex(raw));
    state = applyCommit(state, commit, charter, { now: BigInt(x.now), instanceId: x.instance_id });
    if (hex(openEpochSecret(commit, state, "alice-1", alice)) !== x.secrets[i]) throw new CryptoError("other secret");
    states.push(state);
  }
  return states;
}

test("group commits: apply what Python committed, open the epoch secrets and history, refuse every flipped bit", () => {
  for (const v of V.groups) {
    const states = replayCommits(v);
    assert.deepEqual(states.map((s) => hex(s.toBytes())), v.states);
    states.forEach((s, i) => assert.equal(hex(GroupState.fromBytes(fromHex(v.states[i])).hash), hex(s.hash)));
    const commits = (v.commits as string[]).map((c) => Commit.fromBytes(fromHex(c)));
    commits.forEach((c, i) => assert.equal(hex(c.toBytes()), v.commits[i]));
    const jerome = new HpkePrivateKey(fromHex(v.members["jérôme-pc"]));
    assert.equal(hex(openEpochSecret(commits[1]!, states[1]!, "jérôme-pc", jerome)), v.secrets[1]);
    assert.deepEqual([...openHistory(commits[1]!, states[1]!, "jérôme-pc", jerome)].map(([e, k]) => [e, hex(k)]), [[0n, v.secrets[0]]]);
    assert.throws(() => openEpochSecret(commits[2]!, states[2]!, "jérôme-pc", jerome), /not a member/);
    // a commit out of order, under another charter version, dated in the future, of another instance
    assert.throws(() => replayCommits({ ...v, commits: [v.commits[0], v.commits[2]] }), errors.EpochError);
    assert.throws(() => replayCommits(v, v.other_charter), /another charter version/);
    assert.throws(() => replayCommits({ ...v, now: BigInt(v.now) - 1000n }), /dated in the future/);
    assert.throws(() => replayCommits({ ...v, instance_id: "elsewhere" }), /another instance/);
    for (const refused of v.refused) {
      assert.throws(() => replayCommits({ ...v, commits: refused.commits }), new RegExp(refused.error), refused.name);
      count("groups");
    }
    count("groups", 5);
    count("flips", refusesEveryFlip(v, (x: Json) => void replayCommits(x)));
  }
});

test("replay tracking: the same outcomes and gaps as Python's ReplayTracker, step by step", () => {
  const tracker = new ReplayTracker();
  for (const step of V.replays) {
    let outcome = "ok";
    try {
      tracker.record("op-tiger", "general", step.sender, BigInt(step.counter));
    } catch (exc) {
      outcome = (exc as Error).name;
    }
    assert.equal(outcome, step.outcome, `${step.sender} ${step.counter}`);
    const gaps = tracker.gaps("op-tiger", "general", step.sender).map((g) => (Array.isArray(g) ? g.map(Number) : Number(g)));
    assert.deepEqual(gaps, step.gaps, `${step.sender} ${step.counter}`);
    count("replays");
  }
});

test("key files: open what Python sealed under a passphrase, refuse a wrong one and changed files", async () => {
  const v = V.keyfiles;
  assert.equal(hex(await openKeyFile(fromHex(v.file), v.passphrase, v.purpose)), v.secret);
  await assert.rejects(openKeyFile(fromHex(v.file), `${v.passphrase}!`, v.purpose), errors.WrongPassphrase);
  await assert.rejects(openKeyFile(fromHex(v.file), v.passphrase, "org-root"), errors.DecodeError);
  for (const refused of v.refused) {
    const kind = (errors as Record<string, unknown>)[refused.error] as new () => Error;
    await assert.rejects(openKeyFile(fromHex(refused.file), v.passphrase, v.purpose), kind, refused.name);
    count("keyfiles");
  }
  const light = { timeCost: 1, memoryKib: 256, parallelism: 1 };
  const again = await sealKeyFile(fromHex(v.secret), v.passphrase, v.purpose, light);
  assert.equal(hex(await openKeyFile(again, v.passphrase, v.purpose)), v.secret);
  count("keyfiles");
});

test("malformed encodings are refused with the same error class as Python", () => {
  for (const v of V.malformed) {
    assert.throws(
      () => Certificate.fromBytes(fromHex(v.bytes)),
      (exc: unknown) => exc instanceof CryptoError && (v.error !== "UnsupportedVersion" || exc instanceof UnsupportedVersion),
      v.name,
    );
    count("malformed");
  }
  // a length prefix is checked against the limit before any allocation
  const huge = new Writer(label("cert")).finish();
  assert.throws(() => new Reader(lengthPrefixed(huge).slice(4), label("cert")).blob({ maxLen: 10 }), CryptoError);
});

test("ed25519 edges: the verdict of Python (OpenSSL), by WebCrypto and by the check without it", async () => {
  assert.ok(globalThis.crypto?.subtle, "Node's WebCrypto");
  for (const v of V.ed25519_edges) {
    const [key, sig, msg] = [new VerifyKey(fromHex(v.key)), fromHex(v.signature), fromHex(v.message)];
    const sync = (() => {
      try {
        key.verify(sig, msg);
        return true;
      } catch (exc) {
        assert.ok(exc instanceof errors.SignatureError, v.name);
        return false;
      }
    })();
    const web = await key.verifyAsync(sig, msg).then(
      () => true,
      (exc: unknown) => (assert.ok(exc instanceof errors.SignatureError, v.name), false),
    );
    assert.equal(sync, v.valid, `${v.name}: verify`);
    assert.equal(web, v.valid, `${v.name}: verifyAsync`);
    count("ed25519 edges");
  }
  assert.ok(V.ed25519_edges.some((v: Json) => v.valid) && V.ed25519_edges.some((v: Json) => !v.valid));
});

test("summary", () => {
  console.log(`# vectors checked: ${JSON.stringify(counts)}`);
});
