/**
 * The client core's pure parts (web/src/client): the sealed store, Python's JSON and
 * seizure message ids, invitations, the persisted replay tracker, revoked keys, content
 * checks and the enrolment's own-key check. The whole client runs against the real server in
 * tests/web/test_core.py.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Certificate } from "../src/certs.js";
import { b64e } from "../src/encoding.js";
import { ReplayTracker } from "../src/envelope.js";
import { DecryptionError, ReplayError } from "../src/errors.js";
import { SigningKey } from "../src/keys.js";
import {
  ClientError, ContentError, MemoryStore, RESPONSE_HEADER, SealedStore, completeEnrolment, createDevice, deviceState,
  parseInvitation, pythonJson, recordMessageId, seizure,
} from "../src/client/index.js";
import { RevokedKeys } from "../src/client/revocations.js";

const FAST = { timeCost: 1, memoryKib: 1024, parallelism: 1 };
const bytes = (s: string) => new TextEncoder().encode(s);

test("a sealed value opens only under its own name and store key", async () => {
  const backend = new MemoryStore();
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sealed = new SealedStore(backend, key);
  await sealed.put("secret/op/plan/1", bytes("epoch secret"));
  assert.deepEqual(await sealed.get("secret/op/plan/1"), bytes("epoch secret"));
  const raw = (await backend.get("s/secret/op/plan/1"))!;
  assert.ok(!Buffer.from(raw).includes(Buffer.from("epoch secret")));
  await backend.put("s/secret/op/plan/2", raw); // moved to another name
  await assert.rejects(sealed.get("secret/op/plan/2"), DecryptionError);
  const other = new SealedStore(backend, crypto.getRandomValues(new Uint8Array(32)));
  await assert.rejects(other.get("secret/op/plan/1"), DecryptionError);
  assert.deepEqual(await sealed.keys("secret/"), ["secret/op/plan/1", "secret/op/plan/2"]);
});

test("payloads are written as Python's json.dumps(sort_keys=True) writes them", () => {
  const value = { b: [1, "é€😀", null, true], a: { z: "x\n\u007f", Z: 2.5 } };
  assert.equal(pythonJson(value), '{"a": {"Z": 2.5, "z": "x\\n\\u007f"}, "b": [1, "\\u00e9\\u20ac\\ud83d\\ude00", null, true]}');
});

test("a seizure record's message id is Python's uuid5 of the operation, organisation and record", () => {
  // values printed by opseal.client.content.record_message_id
  assert.equal(recordMessageId("op-stop-v", "fr-customs", "FR-1"), "1223d0b1-48f1-5cb7-a3b2-fb3a8958d3c7");
  assert.equal(recordMessageId("op-ünï", "fr-customs", "FR-é"), "4eb008a1-afbe-5dc7-804e-c8ec30372b05");
});

test("a seizure record missing a required field is refused naming it", () => {
  const record = {
    record_id: "FR-1", case_ref: "C-1", reporting_country: "FR", seizure_date: "2026-02-30",
    transport_mode: "express", ecommerce: true, goods: [{ category: "ipr" }],
  };
  assert.throws(() => seizure(record), (e: ContentError) => e.field === "seizure_date");
  assert.throws(() => seizure({ ...record, seizure_date: "2026-02-28", goods: [{ category: "toys" }] }), (e: ContentError) => e.field === "goods[0].category");
  assert.equal(seizure({ ...record, seizure_date: "2026-02-28" }).record_id, "FR-1");
});

function invitation(rootKey: string, fingerprint: string): string {
  return [
    "> -----BEGIN OPSEAL INVITATION-----", "> operation: op-stop-v", "> coordinator: wco", "> server: https://x",
    "> instance: i-1", `> root-key: ${rootKey}`, `> fingerprint: ${fingerprint}`, "> -----END OPSEAL INVITATION-----",
  ].join("\n");
}

test("an invitation whose root key does not give its fingerprint is refused", () => {
  const root = SigningKey.generate().verifyKey;
  const parsed = parseInvitation(invitation(b64e(root.raw), root.fingerprint));
  assert.equal(parsed.operationId, "op-stop-v");
  assert.deepEqual(parsed.rootKey.raw, root.raw);
  const other = SigningKey.generate().verifyKey;
  assert.throws(() => parseInvitation(invitation(b64e(other.raw), root.fingerprint)), /does not match its fingerprint/);
  assert.throws(() => parseInvitation("operation: x"), /no invitation found/);
});

test("a replay tracker restored from its JSON refuses a replay and keeps its gaps", () => {
  const tracker = new ReplayTracker();
  for (const counter of [1n, 2n, 5n]) tracker.record("op", "plan", "d", counter);
  const restored = ReplayTracker.fromJSON(JSON.parse(JSON.stringify(tracker.toJSON())));
  assert.throws(() => restored.record("op", "plan", "d", 2n), ReplayError);
  assert.deepEqual(restored.gaps("op", "plan", "d"), [3n, 4n]);
  restored.record("op", "plan", "d", 3n); // a late arrival, once
  assert.throws(() => restored.record("op", "plan", "d", 3n), ReplayError);
});

test("revoked keys at a moment are those revoked at or before it", () => {
  const keys = new RevokedKeys(new Map([["aa", 100n], ["bb", 200n]]));
  assert.ok(keys.has("bb"));
  assert.deepEqual([...(keys.at(150n) as Set<string>)], ["aa"]);
});

test("an answer certifying another key is refused and nothing is saved", async () => {
  const store = new MemoryStore();
  const passphrase = "correct horse battery staple";
  await assert.rejects(createDevice(store, { server: "http://127.0.0.1:9", organisationId: "fr", userId: "u", deviceId: "d", passphrase: "short" }), ClientError);
  const pending = await createDevice(store, { server: "http://127.0.0.1:9", organisationId: "fr", userId: "u", deviceId: "d", passphrase, kdf: FAST });
  assert.match(pending.requestText, /^OPSEAL ENROLMENT REQUEST v1\n/);
  const root = SigningKey.generate();
  const now = BigInt(Math.floor(Date.now() / 1000));
  const cert = Certificate.signed({
    kind: "user", organisationId: "fr", userId: "u", deviceId: "", userKind: "person", name: "u",
    signingKey: SigningKey.generate().verifyKey, hpkeKey: null, issuerKeyId: root.verifyKey.keyId,
    issuedAt: now, expiresAt: now + 86400n, attributes: new Map(),
  }, root);
  const response = `${RESPONSE_HEADER}\n${b64e(cert.toBytes())}\n`;
  await assert.rejects(completeEnrolment(store, response, passphrase), /not for this device's request/);
  assert.equal(await deviceState(store), "pending");
});
