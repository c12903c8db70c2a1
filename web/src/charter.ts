/**
 * The operation charter, as opseal.crypto.charter: decode all three encodings
 * (`opseal/v1/charter`, `/charter/2` with reporting codes, `/charter/3` with rotation
 * periods), re-encode byte for byte, and verify the hash chain of versions from the pinned
 * coordinator root (verifyCharterChain).
 */
import { Certificate, type RevokedSet, keyIdHex, verifyUserCertificate } from "./certs.js";
import { CertificateError, CharterError, DecodeError, PolicyError, SignatureError } from "./errors.js";
import {
  Reader, Writer, concat, equalBytes, isPrintable, label, lengthPrefixed, sha256, sortedUnique, utf8Length,
} from "./encoding.js";
import { type SigningKey, VerifyKey } from "./keys.js";

export const ROLES = ["coordinator", "customs", "partner", "stakeholder", "observer"] as const;
export const HISTORY_POLICIES = ["shared", "since-join"] as const;
export const ENCODINGS: Record<number, Uint8Array> = { 1: label("charter"), 2: label("charter/2"), 3: label("charter/3") };
export const DEFAULT_ROTATION_PERIOD = 86400n;
export const MAX_REPORTING_CODES = 64;
const ROTATION_RANGE = [3600n, 30n * 86400n] as const;
const NO_PREDECESSOR = new Uint8Array(32);

function text(value: string, what: string, maxLen = 256): string {
  if (!value || utf8Length(value) > maxLen || !isPrintable(value)) {
    throw new DecodeError(`charter: ${what} must be 1-${maxLen} printable bytes`);
  }
  return value;
}

export class Member {
  constructor(
    readonly organisationId: string,
    readonly name: string,
    readonly kind: string,
    readonly role: string,
    readonly rootKey: VerifyKey,
    readonly reportingCodes: readonly string[] = [],
  ) {
    text(organisationId, "organisation id", 128);
    text(name, "organisation name");
    text(kind, "organisation kind", 64);
    if (!(ROLES as readonly string[]).includes(role)) throw new DecodeError(`charter: role '${role}' is not one of ${ROLES.join(", ")}`);
    for (const code of reportingCodes) {
      if (!/^[A-Z]{2}$/.test(code)) throw new DecodeError(`charter: reporting code '${code}' is not an ISO 3166 alpha-2 code such as FR`);
    }
    if (!sortedUnique(reportingCodes)) throw new DecodeError("charter: reporting codes must be sorted and unique");
    if (reportingCodes.length > MAX_REPORTING_CODES) {
      throw new DecodeError(`charter: at most ${MAX_REPORTING_CODES} reporting codes per member`);
    }
  }

  write(w: Writer, encoding: number): void {
    w.text(this.organisationId).text(this.name).text(this.kind).text(this.role).blob(this.rootKey.raw);
    if (encoding >= 2) w.list(this.reportingCodes, (x, c) => x.text(c));
  }

  static read(r: Reader, encoding: number): Member {
    const fields = [
      r.text({ maxLen: 128, field: "organisation_id" }),
      r.text({ maxLen: 256, field: "name" }),
      r.text({ maxLen: 64, field: "kind" }),
      r.text({ maxLen: 16, field: "role" }),
    ] as const;
    const rootKey = new VerifyKey(r.blob({ exact: 32, field: "root_key" }));
    new Member(...fields, rootKey); // validate before reading further, as Python does
    if (encoding < 2) return new Member(...fields, rootKey);
    const codes = r.list((x) => x.text({ maxLen: 2, field: "reporting_codes" }), {
      maxCount: MAX_REPORTING_CODES,
      field: "reporting_codes",
    });
    if (!sortedUnique(codes)) throw new DecodeError("charter: reporting codes must be sorted and unique");
    return new Member(...fields, rootKey, codes);
  }
}

export class AreaPolicy {
  constructor(
    readonly name: string,
    readonly readRoles: ReadonlySet<string>,
    readonly postRoles: ReadonlySet<string>,
    readonly history: string = "shared",
    readonly rotationPeriodS: bigint = 0n,
  ) {
    text(name, "area name", 64);
    const [low, high] = ROTATION_RANGE;
    if (rotationPeriodS && !(low <= rotationPeriodS && rotationPeriodS <= high)) {
      throw new DecodeError(`charter: area '${name}' rotation period must be ${low}-${high} s`);
    }
    const all = [...readRoles, ...postRoles];
    if (all.some((role) => !(ROLES as readonly string[]).includes(role))) {
      throw new DecodeError(`charter: area '${name}' names unknown roles`);
    }
    if (!readRoles.has("coordinator")) throw new DecodeError(`charter: coordinators must read area '${name}'`);
    if ([...postRoles].some((role) => !readRoles.has(role))) {
      throw new DecodeError(`charter: area '${name}' lets roles post that cannot read`);
    }
    if (postRoles.has("observer")) throw new DecodeError("charter: observers are read-only and may not post");
    if (!(HISTORY_POLICIES as readonly string[]).includes(history)) {
      throw new DecodeError(`charter: history policy must be one of ${HISTORY_POLICIES.join(", ")}`);
    }
  }

  get rotationPeriod(): bigint {
    return this.rotationPeriodS || DEFAULT_ROTATION_PERIOD;
  }

  write(w: Writer, encoding: number): void {
    w.text(this.name);
    w.list([...this.readRoles].sort(), (x, role) => x.text(role));
    w.list([...this.postRoles].sort(), (x, role) => x.text(role));
    w.text(this.history);
    if (encoding >= 3) w.u64(this.rotationPeriodS);
  }

  static read(r: Reader, encoding: number): AreaPolicy {
    const roles = (field: string): Set<string> => {
      const names = r.list((x) => x.text({ maxLen: 16, field }), { maxCount: 8 });
      if (!sortedUnique(names)) throw new DecodeError(`charter: ${field} must be sorted and unique`);
      return new Set(names);
    };
    const name = r.text({ maxLen: 64, field: "area" });
    const area = new AreaPolicy(name, roles("read_roles"), roles("post_roles"), r.text({ maxLen: 16 }));
    if (encoding < 3) return area;
    return new AreaPolicy(area.name, area.readRoles, area.postRoles, area.history, r.u64("rotation_period_s"));
  }
}

export interface CharterFields {
  operationId: string;
  code: string;
  name: string;
  startsAt: bigint;
  endsAt: bigint;
  version: number;
  previousHash: Uint8Array;
  members: readonly Member[];
  areas: readonly AreaPolicy[];
  issuedAt: bigint;
  signer: Certificate | null;
  signature: Uint8Array;
  encoding: number;
}

/** One signed version of an operation charter. */
export class Charter implements CharterFields {
  readonly operationId!: string;
  readonly code!: string;
  readonly name!: string;
  readonly startsAt!: bigint;
  readonly endsAt!: bigint;
  readonly version!: number;
  readonly previousHash!: Uint8Array;
  readonly members!: readonly Member[];
  readonly areas!: readonly AreaPolicy[];
  readonly issuedAt!: bigint;
  readonly signer!: Certificate | null;
  readonly signature!: Uint8Array;
  readonly encoding!: number;
  private readonly byOrg: Map<string, Member>;
  private readonly byArea: Map<string, AreaPolicy>;
  #hash: Uint8Array | undefined;

  constructor(fields: CharterFields) {
    Object.assign(this, fields);
    text(this.operationId, "operation id", 128);
    text(this.code, "operation code", 64);
    text(this.name, "operation name");
    if (this.endsAt < this.startsAt) throw new DecodeError("charter: the operation ends before it starts");
    if (this.version < 1 || (this.version === 1) !== equalBytes(this.previousHash, NO_PREDECESSOR)) {
      throw new DecodeError("charter: only version 1 has no predecessor");
    }
    if (!(this.encoding in ENCODINGS)) throw new DecodeError(`charter: unknown encoding ${this.encoding}`);
    if (this.encoding === 1 && this.members.some((m) => m.reportingCodes.length)) {
      throw new DecodeError("charter: the first encoding cannot hold reporting codes");
    }
    if (this.encoding < 3 && this.areas.some((a) => a.rotationPeriodS)) {
      throw new DecodeError("charter: only the third encoding holds rotation periods");
    }
    this.byOrg = new Map(this.members.map((m) => [m.organisationId, m]));
    this.byArea = new Map(this.areas.map((a) => [a.name, a]));
    if (this.byOrg.size !== this.members.length || this.byArea.size !== this.areas.length) {
      throw new DecodeError("charter: organisations and areas must be unique");
    }
    if (!this.members.some((m) => m.role === "coordinator")) {
      throw new DecodeError("charter: at least one member must be a coordinator");
    }
  }

  /** This version signed by a coordinator's identity key (`cert` certifies it). */
  static signed(fields: Omit<CharterFields, "signer" | "signature">, key: SigningKey, cert: Certificate): Charter {
    if (!key.verifyKey.equals(cert.signingKey)) throw new CharterError("the signing key does not match the signer's certificate");
    const draft = new Charter({ ...fields, signer: cert, signature: new Uint8Array(0) });
    return new Charter({ ...fields, signer: cert, signature: key.sign(draft.toBeSigned()) });
  }

  toBeSigned(): Uint8Array {
    if (this.signer === null) throw new CharterError("charter version is not signed");
    const w = new Writer(ENCODINGS[this.encoding]!).text(this.operationId).text(this.code).text(this.name);
    w.u64(this.startsAt).u64(this.endsAt).u32(this.version).blob(this.previousHash);
    w.list(this.members, (x, m) => m.write(x, this.encoding));
    w.list(this.areas, (x, a) => a.write(x, this.encoding));
    return w.u64(this.issuedAt).blob(this.signer.toBytes()).finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Charter {
    let encoding = 2;
    for (const [n, tag] of Object.entries(ENCODINGS)) {
      const prefix = lengthPrefixed(tag);
      if (equalBytes(data.slice(0, prefix.length), prefix)) encoding = Number(n);
    }
    const r = new Reader(data, ENCODINGS[encoding]!, "charter");
    const charter = new Charter({
      operationId: r.text({ maxLen: 128, field: "operation_id" }),
      code: r.text({ maxLen: 64, field: "code" }),
      name: r.text({ maxLen: 256, field: "name" }),
      startsAt: r.u64("starts_at"),
      endsAt: r.u64("ends_at"),
      version: r.u32("version"),
      previousHash: r.blob({ exact: 32, field: "previous_hash" }),
      members: r.list((x) => Member.read(x, encoding), { maxCount: 4096, field: "members" }),
      areas: r.list((x) => AreaPolicy.read(x, encoding), { maxCount: 256, field: "areas" }),
      issuedAt: r.u64("issued_at"),
      signer: Certificate.fromBytes(r.blob({ maxLen: 8192, field: "signer" })),
      signature: r.blob({ exact: 64, field: "signature" }),
      encoding,
    });
    r.finish();
    return charter;
  }

  /** SHA-256 of the signed encoding: what the next version and group states point to. */
  get hash(): Uint8Array {
    this.#hash ??= sha256(this.toBytes());
    return this.#hash;
  }

  member(organisationId: string): Member {
    const member = this.byOrg.get(organisationId);
    if (!member) throw new PolicyError(`organisation '${organisationId}' is not a member of ${this.code}`);
    return member;
  }

  area(name: string): AreaPolicy {
    const area = this.byArea.get(name);
    if (!area) throw new PolicyError(`operation ${this.code} has no area '${name}'`);
    return area;
  }

  roleOf(organisationId: string): string {
    return this.member(organisationId).role;
  }

  mayRead(role: string, area: string): boolean {
    return this.area(area).readRoles.has(role);
  }

  mayPost(role: string, area: string): boolean {
    return this.area(area).postRoles.has(role);
  }

  checkMayRead(organisationId: string, area: string): void {
    const role = this.roleOf(organisationId);
    if (!this.mayRead(role, area)) throw new PolicyError(`role '${role}' may not read area '${area}'`);
  }

  checkMayPost(organisationId: string, area: string): void {
    const role = this.roleOf(organisationId);
    if (!this.mayPost(role, area)) throw new PolicyError(`role '${role}' may not post in area '${area}'`);
  }

  /** A coordinator, or a member of the device's own organisation, admits a device whose
   * organisation's role may read the area. */
  checkMayAdmit(committerOrg: string, deviceOrg: string, area: string): void {
    this.checkMayRead(deviceOrg, area);
    if (committerOrg !== deviceOrg && this.roleOf(committerOrg) !== "coordinator") {
      throw new PolicyError(`organisation '${committerOrg}' may not admit devices of '${deviceOrg}'`);
    }
  }

  checkMayRemove(committerOrg: string, deviceOrg: string): void {
    if (committerOrg !== deviceOrg && this.roleOf(committerOrg) !== "coordinator") {
      throw new PolicyError(`organisation '${committerOrg}' may not remove devices of '${deviceOrg}'`);
    }
  }

  checkMayCreateArea(organisationId: string): void {
    if (this.roleOf(organisationId) !== "coordinator") throw new PolicyError("only a coordinator may create an area");
  }

  /** Check this version is signed by a coordinator user of `authority`, not revoked. */
  verifySigner(authority: Charter, now: bigint, revoked: RevokedSet = new Set()): void {
    const signer = this.signer;
    if (signer === null) throw new CharterError("charter version is not signed");
    if (revoked.has(keyIdHex(signer.signingKey.keyId))) {
      throw new CharterError(`charter version ${this.version} is signed by a revoked key`);
    }
    const org = signer.organisationId;
    let member: Member;
    try {
      member = authority.member(org);
    } catch {
      throw new CharterError("charter signer's organisation is not a member");
    }
    if (member.role !== "coordinator") {
      throw new CharterError(`charter signer's organisation '${org}' is not a coordinator`);
    }
    try {
      verifyUserCertificate(signer, member.rootKey, { organisationId: org, now: this.issuedAt });
      signer.signingKey.verify(this.signature, this.toBeSigned(), "charter");
    } catch (exc) {
      if (exc instanceof CertificateError || exc instanceof SignatureError) {
        throw new CharterError(`charter version ${this.version}: ${exc.message}`);
      }
      throw exc;
    }
    if (this.issuedAt > now) throw new CharterError(`charter version ${this.version} is issued in the future`);
  }
}

/** Verify a charter's versions from version 1 and return the latest (design §3). */
export function verifyCharterChain(
  versions: readonly Charter[],
  pinnedRootKeyId: Uint8Array,
  now: bigint,
  revoked: RevokedSet = new Set(),
): Charter {
  const first = versions[0];
  if (first === undefined) throw new CharterError("no charter versions to verify");
  if (first.version !== 1) throw new CharterError("the charter chain must start at version 1");
  first.verifySigner(first, now, revoked);
  if (!equalBytes(first.member(first.signer!.organisationId).rootKey.keyId, pinnedRootKeyId)) {
    throw new CharterError("version 1 is not signed by the pinned coordinator organisation");
  }
  for (let i = 1; i < versions.length; i++) verifySuccessor(versions[i - 1]!, versions[i]!, now, revoked);
  return versions[versions.length - 1]!;
}

/** Check `next` directly follows the verified version `prev`. */
export function verifySuccessor(prev: Charter, next: Charter, now: bigint, revoked: RevokedSet = new Set()): void {
  if (next.operationId !== prev.operationId) throw new CharterError("charter version belongs to another operation");
  if (next.version !== prev.version + 1) {
    throw new CharterError(`expected charter version ${prev.version + 1}, got ${next.version}`);
  }
  if (!equalBytes(next.previousHash, prev.hash)) {
    throw new CharterError(`charter version ${next.version} does not extend the chain`);
  }
  if (next.issuedAt < prev.issuedAt) throw new CharterError(`charter version ${next.version} predates its predecessor`);
  next.verifySigner(prev, now, revoked);
}
