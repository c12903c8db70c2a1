/**
 * A device's keys, made here and never sent anywhere (design §3, §17): `createDevice` makes
 * the user's identity key and the device's signing and HPKE keys and a signed enrolment
 * request in the text format of Python's `encode_request`, for the focal point to certify
 * (`opseal enrol certify`); `completeEnrolment` takes the focal point's answer, checks it
 * certifies this device's own identity key and chains to the organisation's root, and
 * seals everything into the `KeyValueStore` under the passphrase (Argon2id key file).
 */
import { Certificate, EnrolmentRequest } from "../certs.js";
import { b64d, b64e } from "../encoding.js";
import { CryptoError } from "../errors.js";
import type { DeviceIdentity } from "../group.js";
import { HpkePrivateKey } from "../hpke.js";
import { type KdfParams, DEFAULT_KDF, openKeyFile, sealKeyFile } from "../keyfile.js";
import { SigningKey, VerifyKey } from "../keys.js";
import { Api, ClientError, type FetchLike } from "./api.js";
import type { KeyValueStore } from "./store.js";

export const REQUEST_HEADER = "OPSEAL ENROLMENT REQUEST v1";
export const RESPONSE_HEADER = "OPSEAL USER CERTIFICATE v1";
/** A passphrase shorter than this is refused (Python's rule for device keys). */
export const MIN_PASSPHRASE = 12;
const YEAR = 365n * 86400n;
const PENDING = "enrol-request";
const DEVICE = "device";
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** What identifies an enrolled device (nothing secret). */
export interface DeviceInfo {
  server: string;
  organisationId: string;
  userId: string;
  deviceId: string;
  userKind: string;
  /** The instance's id, learnt at enrolment. */
  instanceId: string;
  /** The instance's audit-log key (base64url), pinned at enrolment. */
  logKey: string;
}

/** What `createDevice` needs. */
export interface NewDevice {
  server: string;
  organisationId: string;
  userId: string;
  deviceId: string;
  userKind?: "person" | "service";
  /** The user's name as the certificate shows it (the user id by default). */
  name?: string;
  passphrase: string;
  /** Argon2id cost of the key files (the default is Python's: t=3, 64 MiB). */
  kdf?: KdfParams;
  /** Unix time in seconds (now by default). */
  now?: bigint;
}

/** A request waiting for the focal point. */
export interface PendingDevice {
  request: EnrolmentRequest;
  /** The request file's text (`OPSEAL ENROLMENT REQUEST v1` and one line). */
  requestText: string;
  /** Six groups of five digits for the user to read out to the focal point. */
  fingerprint: string;
}

/** An unlocked device: its info and its identity (private keys). */
export interface UnlockedDevice {
  info: DeviceInfo;
  identity: DeviceIdentity;
  /** The key sealing the device's local store. */
  storeKey: Uint8Array;
}

function checkPassphrase(passphrase: string): void {
  if (passphrase.length < MIN_PASSPHRASE) {
    throw new ClientError(
      `passphrase too weak: a device key needs a passphrase of at least ${MIN_PASSPHRASE} characters (this one has ${passphrase.length})`,
    );
  }
}

function nowSeconds(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

/** Make this device's keys and a signed enrolment request; the private keys stay in `store`,
 * sealed with the passphrase. */
export async function createDevice(store: KeyValueStore, o: NewDevice): Promise<PendingDevice> {
  checkPassphrase(o.passphrase);
  const identity = SigningKey.generate();
  const signing = SigningKey.generate();
  const hpke = HpkePrivateKey.generate();
  const userKind = o.userKind ?? "person";
  const request = EnrolmentRequest.create(identity, {
    organisationId: o.organisationId, userId: o.userId, userKind, name: o.name || o.userId,
    deviceId: o.deviceId, deviceKey: signing.verifyKey, hpkeKey: hpke.publicKey.raw,
    now: o.now ?? nowSeconds(), lifetime: YEAR,
  });
  const info = { server: o.server, organisationId: o.organisationId, userId: o.userId, deviceId: o.deviceId, userKind };
  const pending = {
    identity: b64e(identity.privateBytes()), signing: b64e(signing.privateBytes()), hpke: b64e(hpke.privateBytes()),
    request: b64e(request.toBytes()), info,
  };
  await store.put(PENDING, await sealKeyFile(utf8.encode(JSON.stringify(pending)), o.passphrase, PENDING, o.kdf ?? DEFAULT_KDF));
  return { request, requestText: encodeRequest(request), fingerprint: request.fingerprint };
}

/** The request as the small text file the focal point reads (Python's `encode_request`). */
export function encodeRequest(request: EnrolmentRequest): string {
  return `${REQUEST_HEADER}\n${b64e(request.toBytes())}\n`;
}

/** The user certificate of the focal point's answer (Python's `encode_response`). */
export function readResponse(response: string): Certificate {
  const lines = response.trim().split(/\r?\n/).map((l) => l.trim());
  if (lines.length !== 2 || lines[0] !== RESPONSE_HEADER) {
    throw new ClientError(`not a user certificate: expected '${RESPONSE_HEADER}' and one line`);
  }
  try {
    return Certificate.fromBytes(b64d(lines[1]!, "certificate"));
  } catch (exc) {
    throw new ClientError(`user certificate refused: ${(exc as Error).message}`);
  }
}

/** Refuse the instance's audit-log key unless it is the one given out of band (the key, or
 * its fingerprint's digits). */
export function checkLogKey(servedKey: string, pinned: string): void {
  const digits = (s: string) => s.replace(/[^0-9]/g, "");
  const key = new VerifyKey(b64d(servedKey, "log_key"));
  if (pinned.trim() === servedKey || digits(pinned) === digits(key.fingerprint)) return;
  throw new ClientError(`the instance's audit log key has fingerprint ${key.fingerprint}, not the one given: nothing was saved`);
}

interface Pending {
  identity: string;
  signing: string;
  hpke: string;
  request: string;
  info: Omit<DeviceInfo, "instanceId" | "logKey">;
}

/** Finish the enrolment with the focal point's answer: check that it certifies this
 * device's own identity key and chains to the organisation's root, pin the instance's log
 * key (compared with `logKey` when given), and save the device. */
export async function completeEnrolment(
  store: KeyValueStore,
  response: string,
  passphrase: string,
  o: { logKey?: string; kdf?: KdfParams; fetch?: FetchLike } = {},
): Promise<DeviceInfo> {
  const sealed = await store.get(PENDING);
  if (sealed === undefined) throw new ClientError("no enrolment request is waiting on this device: create one first");
  const pending = JSON.parse(text.decode(await openKeyFile(sealed, passphrase, PENDING))) as Pending;
  const request = EnrolmentRequest.fromBytes(b64d(pending.request));
  const cert = readResponse(response);
  if (
    !cert.signingKey.equals(request.identityKey) || cert.kind !== "user" ||
    cert.organisationId !== request.organisationId || cert.userId !== request.userId
  ) {
    throw new ClientError("the certificate is not for this device's request: nothing was saved");
  }
  const signing = new SigningKey(b64d(pending.signing));
  const api = new Api(pending.info.server, o.fetch);
  const described = await api.instance();
  if (o.logKey) checkLogKey(described.log_key, o.logKey);
  await api.login(described.instance_id, pending.info.deviceId, signing);
  const org = await api.organisation(pending.info.organisationId);
  await api.logout();
  try {
    if (!org.root_key) throw new CryptoError("the organisation has no registered root key");
    cert.checkSignedBy(new VerifyKey(b64d(org.root_key, "root_key")));
  } catch (exc) {
    throw new ClientError(`the certificate does not chain to the organisation root: ${(exc as Error).message}`);
  }
  const info: DeviceInfo = { ...pending.info, instanceId: described.instance_id, logKey: described.log_key };
  const device = {
    info, identity: pending.identity, signing: pending.signing, hpke: pending.hpke,
    userCert: b64e(cert.toBytes()), deviceCert: b64e(request.deviceCert.toBytes()),
    storeKey: b64e(crypto.getRandomValues(new Uint8Array(32))),
  };
  await store.put(DEVICE, await sealKeyFile(utf8.encode(JSON.stringify(device)), passphrase, DEVICE, o.kdf ?? DEFAULT_KDF));
  await store.delete(PENDING);
  return info;
}

/** Whether `store` holds an enrolled device, a pending request, or nothing. */
export async function deviceState(store: KeyValueStore): Promise<"enrolled" | "pending" | "none"> {
  if ((await store.get(DEVICE)) !== undefined) return "enrolled";
  return (await store.get(PENDING)) !== undefined ? "pending" : "none";
}

/** Unlock the enrolled device with its passphrase (a wrong one raises `WrongPassphrase`). */
export async function unlockDevice(store: KeyValueStore, passphrase: string): Promise<UnlockedDevice> {
  const sealed = await store.get(DEVICE);
  if (sealed === undefined) throw new ClientError("this store holds no enrolled device: enrol first");
  const d = JSON.parse(text.decode(await openKeyFile(sealed, passphrase, DEVICE))) as {
    info: DeviceInfo; signing: string; hpke: string; userCert: string; deviceCert: string; storeKey: string;
  };
  const identity: DeviceIdentity = {
    userCert: Certificate.fromBytes(b64d(d.userCert)),
    deviceCert: Certificate.fromBytes(b64d(d.deviceCert)),
    signingKey: new SigningKey(b64d(d.signing)),
    hpkeKey: new HpkePrivateKey(b64d(d.hpke)),
  };
  return { info: d.info, identity, storeKey: b64d(d.storeKey) };
}

/** "Forget this device": wipe every key and everything stored. */
export async function forgetDevice(store: KeyValueStore): Promise<void> {
  await store.clear();
}
