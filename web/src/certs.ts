/**
 * Certificates and revocations (organisation root -> user -> device), byte for byte as
 * opseal.crypto.certs. Every check takes the time it is evaluated at; nothing reads a clock.
 */
import { CertificateError, DecodeError, SignatureError } from "./errors.js";
import { Reader, Writer, concat, equalBytes, isPrintable, label, lengthPrefixed, sha256, utf8Length } from "./encoding.js";
import { SigningKey, VerifyKey, fingerprintText } from "./keys.js";

export const USER_KINDS = ["person", "service"] as const;
const CERT = label("cert");
const REVOCATION = label("revocation");
const ENROL_REQUEST = label("enrol-request");
const MAX_ID = 128;
const HPKE_PUBLIC_KEY_SIZE = 1184 + 32;

export type CertKind = "user" | "device";

/** A set of revoked key ids (hex of the 32-byte id). */
export type RevokedSet = { has(keyIdHex: string): boolean };
const NONE: RevokedSet = new Set<string>();

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function checkId(value: string, what: string): string {
  if (!value || utf8Length(value) > MAX_ID || !isPrintable(value)) {
    throw new DecodeError(`${what} must be 1-${MAX_ID} printable bytes`);
  }
  return value;
}

export interface CertificateFields {
  kind: CertKind;
  organisationId: string;
  userId: string;
  deviceId: string;
  userKind: string;
  name: string;
  signingKey: VerifyKey;
  /** The raw ML-KEM-768 + X25519 public key (1216 bytes) on devices, null on users. */
  hpkeKey: Uint8Array | null;
  issuerKeyId: Uint8Array;
  issuedAt: bigint;
  expiresAt: bigint;
  attributes: Map<string, string>;
  signature: Uint8Array;
}

export class Certificate implements CertificateFields {
  readonly kind!: CertKind;
  readonly organisationId!: string;
  readonly userId!: string;
  readonly deviceId!: string;
  readonly userKind!: string;
  readonly name!: string;
  readonly signingKey!: VerifyKey;
  readonly hpkeKey!: Uint8Array | null;
  readonly issuerKeyId!: Uint8Array;
  readonly issuedAt!: bigint;
  readonly expiresAt!: bigint;
  readonly attributes!: Map<string, string>;
  readonly signature!: Uint8Array;

  constructor(fields: CertificateFields) {
    Object.assign(this, fields);
    if (this.kind !== "user" && this.kind !== "device") {
      throw new DecodeError("certificate: kind must be 'user' or 'device'");
    }
    if (!(USER_KINDS as readonly string[]).includes(this.userKind)) {
      throw new DecodeError(`certificate: user kind must be one of ${USER_KINDS.join(", ")}`);
    }
    checkId(this.organisationId, "certificate: organisation id");
    checkId(this.userId, "certificate: user id");
    const device = this.kind === "device";
    if (device !== Boolean(this.deviceId)) {
      throw new DecodeError("certificate: a device id is required on, and only on, devices");
    }
    if (device !== (this.hpkeKey !== null)) {
      throw new DecodeError("certificate: an HPKE key is required on, and only on, devices");
    }
    if (this.hpkeKey !== null && this.hpkeKey.length !== HPKE_PUBLIC_KEY_SIZE) {
      throw new DecodeError(`HPKE public key must be ${HPKE_PUBLIC_KEY_SIZE} bytes`);
    }
    if (this.deviceId) checkId(this.deviceId, "certificate: device id");
    if (this.expiresAt <= this.issuedAt) {
      throw new DecodeError("certificate: expires_at must be after issued_at");
    }
    if (utf8Length(this.name) > 256 || !isPrintable(this.name)) {
      throw new DecodeError("certificate: name must be at most 256 printable bytes");
    }
  }

  get subjectId(): string {
    return this.kind === "device" ? this.deviceId : this.userId;
  }

  toBeSigned(): Uint8Array {
    return new Writer(CERT)
      .text(this.kind)
      .text(this.organisationId)
      .text(this.userId)
      .text(this.deviceId)
      .text(this.userKind)
      .text(this.name)
      .blob(this.signingKey.raw)
      .optionalBytes(this.hpkeKey)
      .blob(this.issuerKeyId)
      .u64(this.issuedAt)
      .u64(this.expiresAt)
      .textMap(this.attributes)
      .finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Certificate {
    const r = new Reader(data, CERT, "certificate");
    const kind = r.text({ maxLen: 8, field: "kind" });
    if (kind !== "user" && kind !== "device") {
      throw new DecodeError("certificate: kind must be 'user' or 'device'");
    }
    const organisationId = r.text({ maxLen: MAX_ID, field: "organisation_id" });
    const userId = r.text({ maxLen: MAX_ID, field: "user_id" });
    const deviceId = r.text({ maxLen: MAX_ID, field: "device_id" });
    const userKind = r.text({ maxLen: 16, field: "user_kind" });
    const name = r.text({ maxLen: 256, field: "name" });
    const signingKey = new VerifyKey(r.blob({ exact: 32, field: "signing_key" }));
    const hpkeKey = r.optionalBytes({ maxLen: 2048, field: "hpke_key" });
    if (hpkeKey !== null && hpkeKey.length !== HPKE_PUBLIC_KEY_SIZE) {
      throw new DecodeError(`HPKE public key must be ${HPKE_PUBLIC_KEY_SIZE} bytes`);
    }
    const cert = new Certificate({
      kind,
      organisationId,
      userId,
      deviceId,
      userKind,
      name,
      signingKey,
      hpkeKey,
      issuerKeyId: r.blob({ exact: 32, field: "issuer_key_id" }),
      issuedAt: r.u64("issued_at"),
      expiresAt: r.u64("expires_at"),
      attributes: r.textMap({ field: "attributes" }),
      signature: r.blob({ exact: 64, field: "signature" }),
    });
    r.finish();
    return cert;
  }

  /** Throw CertificateError unless `issuer` issued and signed this certificate. */
  checkSignedBy(issuer: VerifyKey): void {
    if (!equalBytes(this.issuerKeyId, issuer.keyId)) {
      throw new CertificateError(`certificate of '${this.subjectId}' names another issuer`);
    }
    try {
      issuer.verify(this.signature, this.toBeSigned());
    } catch (exc) {
      if (exc instanceof SignatureError) {
        throw new CertificateError(`certificate of '${this.subjectId}': bad signature`);
      }
      throw exc;
    }
  }

  checkValidAt(now: bigint): void {
    if (!(this.issuedAt <= now && now < this.expiresAt)) {
      throw new CertificateError(
        `certificate of '${this.subjectId}' is not valid at ${now} (valid ${this.issuedAt}..${this.expiresAt})`,
      );
    }
  }

  /** A copy of `draft` signed by `issuer` (this side producing certificates). */
  static signed(draft: Omit<CertificateFields, "signature">, issuer: SigningKey): Certificate {
    const unsigned = new Certificate({ ...draft, signature: new Uint8Array(0) });
    return new Certificate({ ...draft, signature: issuer.sign(unsigned.toBeSigned()) });
  }
}

export interface ChainContext {
  organisationId: string;
  now: bigint;
  revoked?: RevokedSet;
}

/** Check that `userCert` is a user of the organisation certified by its `root`. */
export function verifyUserCertificate(userCert: Certificate, root: VerifyKey, ctx: ChainContext): void {
  if (userCert.kind !== "user") throw new CertificateError("expected a user certificate");
  if (userCert.organisationId !== ctx.organisationId) {
    throw new CertificateError(`user '${userCert.userId}' belongs to another organisation`);
  }
  userCert.checkSignedBy(root);
  userCert.checkValidAt(ctx.now);
  if ((ctx.revoked ?? NONE).has(toHex(userCert.signingKey.keyId))) {
    throw new CertificateError(`user '${userCert.userId}' has been revoked`);
  }
}

/** Check the chain device -> user -> organisation root at time `ctx.now`. */
export function verifyDeviceChain(
  deviceCert: Certificate,
  userCert: Certificate,
  root: VerifyKey,
  ctx: ChainContext,
): void {
  verifyUserCertificate(userCert, root, ctx);
  if (deviceCert.kind !== "device") throw new CertificateError("expected a device certificate");
  if (deviceCert.userId !== userCert.userId || deviceCert.organisationId !== ctx.organisationId) {
    throw new CertificateError(`device '${deviceCert.deviceId}' belongs to another user`);
  }
  if (deviceCert.userKind !== userCert.userKind) {
    throw new CertificateError(`device '${deviceCert.deviceId}' misstates its user's kind`);
  }
  deviceCert.checkSignedBy(userCert.signingKey);
  deviceCert.checkValidAt(ctx.now);
  if ((ctx.revoked ?? NONE).has(toHex(deviceCert.signingKey.keyId))) {
    throw new CertificateError(`device '${deviceCert.deviceId}' has been revoked`);
  }
}

/** A signed statement that a key (a user's identity key or a device key) is revoked. */
export class Revocation {
  constructor(
    readonly organisationId: string,
    readonly subjectId: string,
    readonly revokedKeyId: Uint8Array,
    readonly reason: string,
    readonly revokedAt: bigint,
    readonly issuerKeyId: Uint8Array,
    readonly signature: Uint8Array,
  ) {}

  toBeSigned(): Uint8Array {
    return new Writer(REVOCATION)
      .text(this.organisationId)
      .text(this.subjectId)
      .blob(this.revokedKeyId)
      .text(this.reason)
      .u64(this.revokedAt)
      .blob(this.issuerKeyId)
      .finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Revocation {
    const r = new Reader(data, REVOCATION, "revocation");
    const rev = new Revocation(
      checkId(r.text({ maxLen: MAX_ID, field: "organisation_id" }), "org"),
      checkId(r.text({ maxLen: MAX_ID, field: "subject_id" }), "subject"),
      r.blob({ exact: 32, field: "revoked_key_id" }),
      r.text({ maxLen: 1024, field: "reason" }),
      r.u64("revoked_at"),
      r.blob({ exact: 32, field: "issuer_key_id" }),
      r.blob({ exact: 64, field: "signature" }),
    );
    r.finish();
    return rev;
  }

  /** Check this revokes `subject`'s key and is signed by `root` or, for a device, by its
   * user's identity key (`userCert`, itself certified by `root`). */
  verify(root: VerifyKey, subject: Certificate, userCert?: Certificate): void {
    if (
      subject.organisationId !== this.organisationId ||
      !equalBytes(subject.signingKey.keyId, this.revokedKeyId)
    ) {
      throw new CertificateError("revocation does not name this certificate's key");
    }
    const issuer = this.issuer(root, subject, userCert);
    try {
      issuer.verify(this.signature, this.toBeSigned());
    } catch (exc) {
      if (exc instanceof SignatureError) throw new CertificateError("revocation: bad signature");
      throw exc;
    }
  }

  private issuer(root: VerifyKey, subject: Certificate, userCert?: Certificate): VerifyKey {
    if (equalBytes(this.issuerKeyId, root.keyId)) return root;
    if (userCert === undefined || !equalBytes(this.issuerKeyId, userCert.signingKey.keyId)) {
      throw new CertificateError("revocation is not signed by an authority of the organisation");
    }
    userCert.checkSignedBy(root);
    const ownDevice = subject.kind === "device" && subject.userId === userCert.userId;
    if (userCert.organisationId !== this.organisationId || !ownDevice) {
      throw new CertificateError("a user may revoke only its own devices");
    }
    return userCert.signingKey;
  }
}

/** A device's signed request to be enrolled (design §3), as opseal.crypto.certs.EnrolmentRequest. */
export class EnrolmentRequest {
  constructor(
    readonly organisationId: string,
    readonly userId: string,
    readonly userKind: string,
    readonly name: string,
    readonly identityKey: VerifyKey,
    readonly deviceCert: Certificate,
    readonly createdAt: bigint,
    readonly signature: Uint8Array,
  ) {}

  /** Certify the device with the new identity key and sign the request with it. */
  static create(
    identity: SigningKey,
    o: {
      organisationId: string;
      userId: string;
      userKind: string;
      name: string;
      deviceId: string;
      deviceKey: VerifyKey;
      hpkeKey: Uint8Array;
      now: bigint;
      lifetime: bigint;
    },
  ): EnrolmentRequest {
    const device = Certificate.signed(
      {
        kind: "device",
        organisationId: o.organisationId,
        userId: o.userId,
        deviceId: o.deviceId,
        userKind: o.userKind,
        name: o.deviceId,
        signingKey: o.deviceKey,
        hpkeKey: o.hpkeKey,
        issuerKeyId: identity.verifyKey.keyId,
        issuedAt: o.now - 60n,
        expiresAt: o.now + o.lifetime,
        attributes: new Map(),
      },
      identity,
    );
    const draft = new EnrolmentRequest(
      o.organisationId, o.userId, o.userKind, o.name, identity.verifyKey, device, o.now, new Uint8Array(0),
    );
    return new EnrolmentRequest(
      o.organisationId, o.userId, o.userKind, o.name, identity.verifyKey, device, o.now,
      identity.sign(draft.toBeSigned()),
    );
  }

  toBeSigned(): Uint8Array {
    return new Writer(ENROL_REQUEST)
      .text(this.organisationId)
      .text(this.userId)
      .text(this.userKind)
      .text(this.name)
      .blob(this.identityKey.raw)
      .blob(this.deviceCert.toBytes())
      .u64(this.createdAt)
      .finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): EnrolmentRequest {
    const r = new Reader(data, ENROL_REQUEST, "enrolment request");
    const request = new EnrolmentRequest(
      checkId(r.text({ maxLen: MAX_ID, field: "organisation_id" }), "org"),
      checkId(r.text({ maxLen: MAX_ID, field: "user_id" }), "user"),
      r.text({ maxLen: 16, field: "user_kind" }),
      r.text({ maxLen: 256, field: "name" }),
      new VerifyKey(r.blob({ exact: 32, field: "identity_key" })),
      Certificate.fromBytes(r.blob({ maxLen: 8192, field: "device_cert" })),
      r.u64("created_at"),
      r.blob({ exact: 64, field: "signature" }),
    );
    r.finish();
    return request;
  }

  /** Six groups of five digits over everything signed, for reading aloud. */
  get fingerprint(): string {
    return fingerprintText(sha256(this.toBeSigned()));
  }

  verify(): void {
    try {
      this.identityKey.verify(this.signature, this.toBeSigned(), "request");
    } catch (exc) {
      if (exc instanceof SignatureError) {
        throw new CertificateError("enrolment request: bad signature (altered on the way?)");
      }
      throw exc;
    }
    const c = this.deviceCert;
    if (
      c.kind !== "device" ||
      c.organisationId !== this.organisationId ||
      c.userId !== this.userId ||
      c.userKind !== this.userKind
    ) {
      throw new CertificateError("enrolment request: the device certificate names another user");
    }
    c.checkSignedBy(this.identityKey);
  }
}

export { toHex as keyIdHex };
