/**
 * The other direction of the cross-language vectors: builds, in TypeScript, from the same
 * fixed seeds as tests/web_vectors.py, a certificate chain, an enrolment request, receipts, a
 * login proof and a checkpoint, and prints them as JSON (hex). tests/test_web_vectors.py runs
 * this with `node` and verifies every object with opseal.crypto, and checks the bytes equal
 * what Python builds from the same seeds (Ed25519 is deterministic).
 *
 * The HPKE public keys come from @noble/post-quantum's ML-KEM-768 key generation from the
 * 64-byte seed and @noble/curves' X25519, as crypto/keys.py lays them out.
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { shake256 } from "@noble/hashes/sha3.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { encryptAttachment } from "../src/attachments.js";
import { Certificate, EnrolmentRequest } from "../src/certs.js";
import { AreaPolicy, Charter, Member } from "../src/charter.js";
import { concat, hex } from "../src/encoding.js";
import { Header, epochAuthenticator, seal } from "../src/envelope.js";
import { type DeviceIdentity, createArea, createCommit, createKeyPackage } from "../src/group.js";
import { HpkePrivateKey } from "../src/hpke.js";
import { sealKeyFile } from "../src/keyfile.js";
import { SigningKey } from "../src/keys.js";
import { Checkpoint, leafHash, rootHash } from "../src/merkle.js";
import { Receipt, ReceiptGossip, loginMessage } from "../src/statements.js";

const NOW = 1_780_000_000n;
const YEAR = 365n * 86400n;
const INSTANCE = "opseal-vectors";
const utf8 = new TextEncoder();

function seeded(name: string, size = 32): Uint8Array {
  return shake256(utf8.encode(`opseal-web-vectors/${name}`), { dkLen: size });
}
const key = (name: string): SigningKey => new SigningKey(seeded(name));

/** The 1216-byte ML-KEM-768 + X25519 public key of a 96-byte private seed (crypto/keys.py). */
export function hpkePublicKey(raw: Uint8Array): Uint8Array {
  const { publicKey } = ml_kem768.keygen(raw.slice(0, 64));
  return concat(publicKey, x25519.getPublicKey(raw.slice(64)));
}

function chain(org: string, user: string, device: string): [SigningKey, Certificate, Certificate] {
  const root = key(`${org}/root`);
  const identity = key(`${org}/${user}`);
  const userCert = Certificate.signed(
    {
      kind: "user", organisationId: org, userId: user, deviceId: "", userKind: "person",
      name: `${user} of ${org}`, signingKey: identity.verifyKey, hpkeKey: null,
      issuerKeyId: root.verifyKey.keyId, issuedAt: NOW - 86400n, expiresAt: NOW + YEAR,
      attributes: new Map([["unit", "Ports"], ["clearance", "ops"]]),
    },
    root,
  );
  const deviceCert = Certificate.signed(
    {
      kind: "device", organisationId: org, userId: user, deviceId: device, userKind: "person",
      name: `${device} laptop`, signingKey: key(`${org}/${device}`).verifyKey,
      hpkeKey: hpkePublicKey(seeded(`${org}/${device}/hpke`, 96)),
      issuerKeyId: identity.verifyKey.keyId, issuedAt: NOW - 3600n, expiresAt: NOW + YEAR,
      attributes: new Map(),
    },
    identity,
  );
  return [identity, userCert, deviceCert];
}

const out: Record<string, unknown> = {};
const certs = [];
for (const [org, user, device] of [["wco", "alice", "alice-1"], ["fr-customs", "jérôme", "jérôme-pc"]] as const) {
  const [, userCert, deviceCert] = chain(org, user, device);
  certs.push({ organisation_id: org, user: hex(userCert.toBytes()), device: hex(deviceCert.toBytes()) });
}
out.certificates = certs;

const request = EnrolmentRequest.create(key("customs-be/bob"), {
  organisationId: "customs-be", userId: "bob", userKind: "person", name: "Bob Peeters",
  deviceId: "bob-web", deviceKey: key("customs-be/bob-web").verifyKey,
  hpkeKey: hpkePublicKey(seeded("customs-be/bob-web/hpke", 96)), now: NOW, lifetime: YEAR,
});
out.enrolment_request = { bytes: hex(request.toBytes()), fingerprint: request.fingerprint };

const signer = key("wco/alice-1");
const checkpoint = Checkpoint.sign("opseal-vectors", 7n, seeded("root"), NOW, (m) => key("log").sign(m));
const common = {
  instanceId: INSTANCE, operationId: "op-tiger", area: "customs", messageId: seeded("message", 16),
  deviceId: "alice-1", signedAt: NOW,
};
out.receipts = [
  Receipt.create(signer, {
    ...common, kind: "ack", senderDeviceId: "jérôme-pc",
    gossip: new ReceiptGossip(12n, seeded("authenticator"), checkpoint.toBytes()),
  }),
  Receipt.create(signer, { ...common, kind: "read", senderDeviceId: "bob-web", gossip: null }),
].map((r) => hex(r.toBytes()));

const challenge = seeded("challenge");
out.login = {
  instance_id: INSTANCE, device_id: "alice-1", challenge: hex(challenge),
  signature: hex(signer.sign(loginMessage(INSTANCE, "alice-1", challenge))),
};

const leaves = Array.from({ length: 13 }, (_, i) => leafHash(utf8.encode(`entry ${i}`)));
out.checkpoint = hex(Checkpoint.sign("opseal-vectors", 13n, rootHash(leaves), NOW, (m) => key("log").sign(m)).toBytes());

out.attachments = [0, 1, 64, 65, 200].map((size) => {
  const plaintext = size ? seeded(`file${size}/data`, size) : new Uint8Array(0);
  const { ciphertext, meta } = encryptAttachment(plaintext, {
    mediaType: "image/jpeg", fileName: `seizure ${size}.jpg`, chunkSize: 64,
    fileKey: seeded(`file${size}/key`), noncePrefix: seeded(`file${size}/prefix`, 7),
  });
  return { ciphertext: hex(ciphertext), meta: hex(meta.toBytes()) };
});

const te = new TextEncoder();
out.hpke = [
  ["wco/alice-1", "message-key", te.encode("epoch secret ".repeat(3))],
  ["fr/jerome", "welcome", new Uint8Array(0)],
].map(([name, info, plaintext]) => {
  const key = new HpkePrivateKey(seeded(`${name as string}/hpke`, 96));
  return hex(key.publicKey.seal(plaintext as Uint8Array, te.encode(`opseal/v1/test/${info as string}`)));
});

out.envelopes = (
  [
    ["customs", 3, "jérôme-pc", "fr-customs", "text", "H1", false, true, te.encode('{"text":"hello"}')],
    ["general", 1, "alice-1", "wco", "seizure", "H2", true, false, te.encode("seizure ".repeat(40))],
    ["general", 2, "alice-1", "wco", "alert", "H0", false, true, new Uint8Array(0)],
  ] as const
).map(([area, epoch, sender, org, contentType, handling, requiresAck, second, plaintext]) => {
  const secret = seeded(`epoch/${area}/${epoch}`);
  const authenticator = epochAuthenticator(secret, seeded(`state/${area}/${epoch}`));
  const header = new Header({
    instanceId: INSTANCE, operationId: "op-tiger", area, epoch: BigInt(epoch), sender,
    counter: BigInt(7 + epoch), messageId: seeded(`msg/${area}/${epoch}`, 16), contentType, handling,
    requiresAck, clientTimeMs: 1_780_000_000_123n, authenticator: second ? authenticator : new Uint8Array(0),
  });
  return hex(seal(header, plaintext, secret, key(`${org}/${sender}`)).toBytes());
});

{
  const [identity, userCert] = chain("wco", "alice", "alice-1");
  const members = [
    new Member("wco", "World Customs Organization", "customs", "coordinator", key("wco/root").verifyKey, ["BE"]),
    new Member("fr-customs", "Douane française", "customs", "customs", key("fr-customs/root").verifyKey, ["FR", "GF"]),
    new Member("brandx", "Brand X", "company", "stakeholder", key("brandx/root").verifyKey),
  ];
  const areas = [
    new AreaPolicy("general", new Set(["coordinator", "customs", "stakeholder"]), new Set(["coordinator", "customs"])),
    new AreaPolicy("customs", new Set(["coordinator", "customs"]), new Set(["coordinator", "customs"]), "since-join"),
  ];
  const v1 = Charter.signed(
    {
      operationId: "op-tiger", code: "TIGER-26", name: "Operation Tiger", startsAt: NOW, endsAt: NOW + 90n * 86400n,
      version: 1, previousHash: new Uint8Array(32), members, areas, issuedAt: NOW - 600n, encoding: 2,
    },
    identity, userCert,
  );
  const v2 = Charter.signed(
    {
      operationId: "op-tiger", code: "TIGER-26", name: "Operation Tiger (extended)", startsAt: NOW,
      endsAt: NOW + 90n * 86400n, version: 2, previousHash: v1.hash, members, areas, issuedAt: NOW - 300n, encoding: 2,
    },
    identity, userCert,
  );
  out.charters = [hex(v1.toBytes()), hex(v2.toBytes())];

  const device = (org: string, user: string, deviceId: string): DeviceIdentity => {
    const [, u, d] = chain(org, user, deviceId);
    return { userCert: u, deviceCert: d, signingKey: key(`${org}/${deviceId}`), hpkeKey: new HpkePrivateKey(seeded(`${org}/${deviceId}/hpke`, 96)) };
  };
  const alice = device("wco", "alice", "alice-1");
  const jerome = device("fr-customs", "jérôme", "jérôme-pc");
  const [c0, s0, secret0] = createArea(v1, alice, { instanceId: INSTANCE, area: "general", now: NOW, secret: seeded("secret/0") });
  const join = createKeyPackage(jerome, { operationId: "op-tiger", area: "general", now: NOW + 5n });
  const [c1, s1] = createCommit(s0, v1, alice, {
    now: NOW + 10n, adds: [join], history: new Map([[0n, secret0]]), secret: seeded("secret/1"),
  });
  const [c2] = createCommit(s1, v1, alice, { now: NOW + 20n, removes: ["jérôme-pc"], secret: seeded("secret/2") });
  out.commits = [c0, c1, c2].map((c) => hex(c.toBytes()));
}

out.keyfile = hex(await sealKeyFile(seeded("wco/alice-1"), "correct horse ✓ battery", "device", { timeCost: 1, memoryKib: 256, parallelism: 1 }));

console.log(JSON.stringify(out));
