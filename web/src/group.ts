/**
 * Areas as cryptographic groups, as opseal.crypto.group (design §4): key packages (both
 * encodings), roster entries, group states, commits, and `applyCommit` — the validation every
 * client runs on every commit before it uses its secret: epoch, date, charter hash, previous
 * state, committer signature, the committer's rights, every added device's chain, the area's
 * audience, revocations, service accounts, distinct HPKE keys, recipients in roster order,
 * history only to newcomers of shared areas, and the roster hash. `openEpochSecret` checks
 * the commit's confirmation; `openHistory` refuses an epoch that is not in the past.
 *
 * createArea / createCommit build commits (adds, removes, history; not key updates yet)
 * through the same validation.
 */
import { Certificate, type RevokedSet, keyIdHex, verifyDeviceChain } from "./certs.js";
import type { Charter } from "./charter.js";
import { CertificateError, CommitError, DecryptionError, EpochError, PolicyError } from "./errors.js";
import { Reader, Writer, concat, decodeAll, equalBytes, label, lengthPrefixed, sha256 } from "./encoding.js";
import { HpkePublicKey, type HpkePrivateKey } from "./hpke.js";
import { type SigningKey, VerifyKey, hkdfSha256 } from "./keys.js";

const KEY_PACKAGE = label("key-package");
const KEY_PACKAGE_INIT = label("key-package/2");
const ROSTER = label("roster");
const STATE = label("group-state");
const COMMIT = label("commit");
const EPOCH_INFO = label("epoch-secret");
const HISTORY_INFO = label("history");
const CONFIRM = label("epoch-confirm");
const NO_STATE = new Uint8Array(32);
export const MAX_CLOCK_SKEW = 300n;
const MAX_ROSTER = 10_000;
const NONE: RevokedSet = new Set<string>();

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // device ids: Python's sorted() on str (code points)
}

/** A device's signed request to join an area (or its own key update). */
export class KeyPackage {
  constructor(
    readonly operationId: string,
    readonly area: string,
    readonly userCert: Certificate,
    readonly deviceCert: Certificate,
    readonly createdAt: bigint,
    readonly signature: Uint8Array,
    readonly initKey: HpkePublicKey | null,
  ) {}

  get deviceId(): string {
    return this.deviceCert.deviceId;
  }

  /** The key epoch secrets are sealed to: the init key, else the certificate's key. */
  get sealingKey(): HpkePublicKey {
    return this.initKey ?? new HpkePublicKey(this.deviceCert.hpkeKey!);
  }

  toBeSigned(): Uint8Array {
    const w = new Writer(this.initKey === null ? KEY_PACKAGE : KEY_PACKAGE_INIT);
    w.text(this.operationId).text(this.area).blob(this.userCert.toBytes()).blob(this.deviceCert.toBytes());
    w.u64(this.createdAt);
    if (this.initKey !== null) w.blob(this.initKey.raw);
    return w.finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): KeyPackage {
    const first = lengthPrefixed(KEY_PACKAGE);
    const withInit = !equalBytes(data.slice(0, first.length), first);
    return decodeAll(data, withInit ? KEY_PACKAGE_INIT : KEY_PACKAGE, "key package", (r: Reader) => {
      const operationId = r.text({ maxLen: 128, field: "operation_id" });
      const area = r.text({ maxLen: 64, field: "area" });
      const userCert = Certificate.fromBytes(r.blob({ maxLen: 8192, field: "user_cert" }));
      const deviceCert = Certificate.fromBytes(r.blob({ maxLen: 8192, field: "device_cert" }));
      const createdAt = r.u64("created_at");
      const initKey = withInit ? new HpkePublicKey(r.blob({ maxLen: 2048, field: "init_key" })) : null;
      return new KeyPackage(operationId, area, userCert, deviceCert, createdAt, r.blob({ exact: 64, field: "signature" }), initKey);
    });
  }

  /** Check the package's signature and its chain to a root listed in `charter`. */
  verify(charter: Charter, now: bigint, revoked: RevokedSet): void {
    if (this.operationId !== charter.operationId) {
      throw new CommitError(`key package of '${this.deviceId}' is for another operation`);
    }
    const org = this.deviceCert.organisationId;
    verifyDeviceChain(this.deviceCert, this.userCert, charter.member(org).rootKey, { organisationId: org, now, revoked });
    this.deviceCert.signingKey.verify(this.signature, this.toBeSigned(), `key package of '${this.deviceId}'`);
  }
}

/** One device of an area's roster. */
export class RosterEntry {
  constructor(
    readonly deviceId: string,
    readonly userId: string,
    readonly organisationId: string,
    readonly userKind: string,
    readonly signingKey: VerifyKey,
    readonly hpkeKey: HpkePublicKey,
    readonly userKeyId: Uint8Array,
  ) {}

  static fromPackage(p: KeyPackage): RosterEntry {
    const c = p.deviceCert;
    return new RosterEntry(c.deviceId, c.userId, c.organisationId, c.userKind, c.signingKey, p.sealingKey, p.userCert.signingKey.keyId);
  }

  isRevoked(revoked: RevokedSet): boolean {
    return revoked.has(keyIdHex(this.signingKey.keyId)) || revoked.has(keyIdHex(this.userKeyId));
  }

  write(w: Writer): void {
    w.text(this.deviceId).text(this.userId).text(this.organisationId).text(this.userKind);
    w.blob(this.signingKey.raw).blob(this.hpkeKey.raw).blob(this.userKeyId);
  }

  static read(r: Reader): RosterEntry {
    return new RosterEntry(
      r.text({ maxLen: 128, field: "device_id" }),
      r.text({ maxLen: 128, field: "user_id" }),
      r.text({ maxLen: 128, field: "organisation_id" }),
      r.text({ maxLen: 16, field: "user_kind" }),
      new VerifyKey(r.blob({ exact: 32, field: "signing_key" })),
      new HpkePublicKey(r.blob({ maxLen: 2048, field: "hpke_key" })),
      r.blob({ exact: 32, field: "user_key_id" }),
    );
  }
}

function rosterHash(roster: readonly RosterEntry[]): Uint8Array {
  return sha256(new Writer(ROSTER).list(roster, (w, e) => e.write(w)).finish());
}

/** One epoch of an area, as every member's client holds it. */
export class GroupState {
  #hash: Uint8Array | undefined;
  private readonly byDevice: Map<string, RosterEntry>;

  constructor(
    readonly instanceId: string,
    readonly operationId: string,
    readonly area: string,
    readonly epoch: bigint,
    readonly roster: readonly RosterEntry[],
    readonly charterHash: Uint8Array,
    readonly previousStateHash: Uint8Array,
    readonly createdAt: bigint,
  ) {
    this.byDevice = new Map(roster.map((e) => [e.deviceId, e]));
  }

  member(deviceId: string): RosterEntry | undefined {
    return this.byDevice.get(deviceId);
  }

  get rosterHash(): Uint8Array {
    return rosterHash(this.roster);
  }

  toBytes(): Uint8Array {
    const w = new Writer(STATE).text(this.instanceId).text(this.operationId).text(this.area);
    w.u64(this.epoch).list(this.roster, (x, e) => e.write(x));
    return w.blob(this.charterHash).blob(this.previousStateHash).u64(this.createdAt).finish();
  }

  static fromBytes(data: Uint8Array): GroupState {
    return decodeAll(data, STATE, "group state", (r: Reader) =>
      new GroupState(
        r.text({ maxLen: 128, field: "instance_id" }),
        r.text({ maxLen: 128, field: "operation_id" }),
        r.text({ maxLen: 64, field: "area" }),
        r.u64("epoch"),
        r.list(RosterEntry.read, { maxCount: MAX_ROSTER, field: "roster" }),
        r.blob({ exact: 32, field: "charter_hash" }),
        r.blob({ exact: 32, field: "previous_state_hash" }),
        r.u64("created_at"),
      ),
    );
  }

  get hash(): Uint8Array {
    this.#hash ??= sha256(this.toBytes());
    return this.#hash;
  }
}

export interface SealedSecret {
  deviceId: string;
  ciphertext: Uint8Array;
}

/** A signed transition of an area from `epoch - 1` to `epoch` (or its creation at 0). */
export class Commit {
  constructor(
    readonly instanceId: string,
    readonly operationId: string,
    readonly area: string,
    readonly epoch: bigint,
    readonly previousStateHash: Uint8Array,
    readonly charterHash: Uint8Array,
    readonly committer: string,
    readonly adds: readonly KeyPackage[],
    readonly removes: readonly string[],
    readonly update: KeyPackage | null,
    readonly rosterHash: Uint8Array,
    readonly confirmation: Uint8Array,
    readonly sealed: readonly SealedSecret[],
    readonly history: readonly SealedSecret[],
    readonly createdAt: bigint,
    readonly signature: Uint8Array,
  ) {}

  toBeSigned(): Uint8Array {
    const w = new Writer(COMMIT).text(this.instanceId).text(this.operationId).text(this.area);
    w.u64(this.epoch).blob(this.previousStateHash).blob(this.charterHash).text(this.committer);
    w.list(this.adds, (x, p) => x.blob(p.toBytes()));
    w.list(this.removes, (x, d) => x.text(d));
    w.optionalBytes(this.update ? this.update.toBytes() : null);
    w.blob(this.rosterHash).blob(this.confirmation);
    w.list(this.sealed, (x, s) => x.text(s.deviceId).blob(s.ciphertext));
    w.list(this.history, (x, s) => x.text(s.deviceId).blob(s.ciphertext));
    return w.u64(this.createdAt).finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Commit {
    const sealed = (x: Reader): SealedSecret => ({
      deviceId: x.text({ maxLen: 128, field: "device_id" }),
      ciphertext: x.blob({ maxLen: 1 << 20 }),
    });
    return decodeAll(data, COMMIT, "commit", (r: Reader) => {
      const head = [
        r.text({ maxLen: 128, field: "instance_id" }),
        r.text({ maxLen: 128, field: "operation_id" }),
        r.text({ maxLen: 64, field: "area" }),
      ] as const;
      const epoch = r.u64("epoch");
      const previous = r.blob({ exact: 32, field: "previous_state_hash" });
      const charterHash = r.blob({ exact: 32, field: "charter_hash" });
      const committer = r.text({ maxLen: 128, field: "committer" });
      const adds = r.list((x) => KeyPackage.fromBytes(x.blob({ maxLen: 32768, field: "add" })), { maxCount: MAX_ROSTER, field: "adds" });
      const removes = r.list((x) => x.text({ maxLen: 128 }), { maxCount: MAX_ROSTER, field: "removes" });
      const rawUpdate = r.optionalBytes({ maxLen: 32768, field: "update" });
      return new Commit(
        ...head, epoch, previous, charterHash, committer, adds, removes,
        rawUpdate === null ? null : KeyPackage.fromBytes(rawUpdate),
        r.blob({ exact: 32, field: "roster_hash" }),
        r.blob({ exact: 32, field: "confirmation" }),
        r.list(sealed, { maxCount: MAX_ROSTER, field: "sealed" }),
        r.list(sealed, { maxCount: MAX_ROSTER, field: "history" }),
        r.u64("created_at"),
        r.blob({ exact: 64, field: "signature" }),
      );
    });
  }

  get hash(): Uint8Array {
    return sha256(this.toBytes());
  }
}

function commitContext(purpose: Uint8Array, c: Commit): Writer {
  return new Writer(purpose).text(c.instanceId).text(c.operationId).text(c.area).u64(c.epoch).blob(c.previousStateHash);
}

function sealInfo(purpose: Uint8Array, c: Commit, e: RosterEntry): Uint8Array {
  return commitContext(purpose, c).text(e.deviceId).blob(e.hpkeKey.keyId).finish();
}

function confirmation(secret: Uint8Array, c: Commit): Uint8Array {
  return hkdfSha256(secret, commitContext(CONFIRM, c).finish(), 32);
}

function checkFrame(state: GroupState | null, c: Commit, charter: Charter, now: bigint): void {
  const expected = state === null ? 0n : state.epoch + 1n;
  if (c.epoch !== expected) throw new EpochError(`commit for epoch ${c.epoch}; expected epoch ${expected}`);
  if (c.createdAt > now + MAX_CLOCK_SKEW) throw new CommitError("commit is dated in the future");
  if (state !== null && c.createdAt < state.createdAt) throw new CommitError("commit is dated before the epoch it follows");
  if (charter.operationId !== c.operationId) throw new CommitError("commit belongs to another operation");
  if (!equalBytes(c.charterHash, charter.hash)) throw new CommitError("commit was made under another charter version");
  if (state === null) {
    charter.area(c.area);
    if (!equalBytes(c.previousStateHash, NO_STATE) || c.removes.length || c.update) {
      throw new CommitError("an area's first commit may only add devices");
    }
    return;
  }
  if (c.instanceId !== state.instanceId || c.operationId !== state.operationId || c.area !== state.area) {
    throw new CommitError("commit belongs to another area");
  }
  if (!equalBytes(c.previousStateHash, state.hash)) throw new CommitError("commit does not follow the current state");
}

function creator(c: Commit): KeyPackage {
  const found = c.adds.find((p) => p.deviceId === c.committer);
  if (found === undefined) throw new CommitError("an area's first commit must add its creator");
  return found;
}

function committerEntry(state: GroupState, c: Commit): RosterEntry {
  const entry = state.member(c.committer);
  if (entry === undefined) throw new PolicyError(`device '${c.committer}' is not a member and may not commit`);
  return entry;
}

function nextRoster(state: GroupState | null, c: Commit, charter: Charter, now: bigint, revoked: RevokedSet): RosterEntry[] {
  const roster = new Map(state ? state.roster.map((e) => [e.deviceId, e] as const) : []);
  const committerOrg = state ? committerEntry(state, c).organisationId : creator(c).deviceCert.organisationId;
  if (state === null) charter.checkMayCreateArea(committerOrg);
  else if (roster.get(c.committer)!.isRevoked(revoked)) throw new CertificateError(`committer '${c.committer}' has been revoked`);
  charter.checkMayRead(committerOrg, c.area);
  if (new Set(c.removes).size !== c.removes.length) throw new CommitError("commit removes a device twice");
  if (c.adds.some((p) => c.removes.includes(p.deviceId))) throw new CommitError("a commit may not remove and add the same device");
  for (const deviceId of c.removes) {
    const entry = roster.get(deviceId);
    if (entry === undefined) throw new CommitError(`commit removes '${deviceId}', which is not a member`);
    roster.delete(deviceId);
    charter.checkMayRemove(committerOrg, entry.organisationId);
  }
  if (c.update !== null) {
    const update = c.update;
    const current = roster.get(c.committer);
    if (current === undefined || update.deviceId !== c.committer) throw new CommitError("a device may update only its own keys");
    const cert = update.deviceCert;
    if (cert.organisationId !== current.organisationId || cert.userId !== current.userId || cert.userKind !== current.userKind) {
      throw new CommitError("a key update must keep the device's organisation and user");
    }
    if (update.area !== c.area) throw new CommitError("a key update must be for the area it is committed to");
    if (equalBytes(update.sealingKey.raw, current.hpkeKey.raw)) throw new CommitError("a key update must bring a new init key");
    update.verify(charter, now, revoked);
    roster.set(c.committer, RosterEntry.fromPackage(update));
  }
  for (const p of c.adds) {
    if (p.area !== c.area) throw new CommitError(`key package of '${p.deviceId}' is for another area`);
    if (roster.has(p.deviceId)) throw new CommitError(`device '${p.deviceId}' is already a member`);
    p.verify(charter, now, revoked);
    charter.checkMayAdmit(committerOrg, p.deviceCert.organisationId, c.area);
    roster.set(p.deviceId, RosterEntry.fromPackage(p));
  }
  if (!roster.has(c.committer)) throw new CommitError("the committer must stay a member of the area it commits to");
  const services = new Set<string>();
  for (const e of roster.values()) {
    charter.checkMayRead(e.organisationId, c.area);
    if (e.isRevoked(revoked)) throw new CommitError(`device '${e.deviceId}' is revoked and must be removed`);
    if (e.userKind === "service") {
      const k = JSON.stringify([e.organisationId, e.userId]);
      if (services.has(k)) throw new CommitError(`service account '${e.userId}' may have only one device`);
      services.add(k);
    }
  }
  if (new Set([...roster.values()].map((e) => keyIdHex(e.hpkeKey.raw))).size !== roster.size) {
    throw new CommitError("two devices of the roster share an HPKE key");
  }
  return [...roster.keys()].sort(compareIds).map((d) => roster.get(d)!);
}

/** Validate `commit` against `state` (null for an area's creation) and the current charter;
 * return the next state or throw. Certificates are checked at the commit's own date. */
export function applyCommit(
  state: GroupState | null,
  c: Commit,
  charter: Charter,
  o: { now: bigint; revoked?: RevokedSet; instanceId?: string },
): GroupState {
  const revoked = o.revoked ?? NONE;
  checkFrame(state, c, charter, o.now);
  if (state === null && c.instanceId !== o.instanceId) throw new CommitError("commit belongs to another instance");
  const key = state ? committerEntry(state, c).signingKey : creator(c).deviceCert.signingKey;
  key.verify(c.signature, c.toBeSigned(), "commit");
  const roster = nextRoster(state, c, charter, c.createdAt, revoked);
  if (c.sealed.map((s) => s.deviceId).join("\u0000") !== roster.map((e) => e.deviceId).join("\u0000") || c.sealed.length !== roster.length) {
    throw new CommitError("the epoch secret must be sealed to every member, once, in order");
  }
  const newcomers = new Set(c.adds.map((p) => p.deviceId));
  const historyIds = c.history.map((s) => s.deviceId);
  if (new Set(historyIds).size !== historyIds.length || historyIds.some((d) => !newcomers.has(d))) {
    throw new CommitError("history may only be sealed to the devices this commit adds");
  }
  if (historyIds.length && charter.area(c.area).history !== "shared") {
    throw new CommitError(`area '${c.area}' does not share history with newcomers`);
  }
  const next = new GroupState(
    c.instanceId, c.operationId, c.area, c.epoch, roster, charter.hash, state ? state.hash : NO_STATE, c.createdAt,
  );
  if (!equalBytes(next.rosterHash, c.rosterHash)) throw new CommitError("commit's roster hash does not match its proposals");
  return next;
}

function ownEntry(newState: GroupState, deviceId: string, key: HpkePrivateKey): RosterEntry {
  const entry = newState.member(deviceId);
  if (entry === undefined) throw new CommitError(`device '${deviceId}' is not a member of this epoch`);
  if (!equalBytes(entry.hpkeKey.raw, key.publicKey.raw)) {
    throw new CommitError(`the key device '${deviceId}' is listed with in this epoch is not one it holds`);
  }
  return entry;
}

/** The epoch secret sealed to `deviceId` (holding `key`) in a commit already validated into
 * `newState`; checks the commit's confirmation so every member holds the same secret. */
export function openEpochSecret(c: Commit, newState: GroupState, deviceId: string, key: HpkePrivateKey): Uint8Array {
  const entry = ownEntry(newState, deviceId, key);
  const sealed = c.sealed.find((s) => s.deviceId === entry.deviceId);
  if (sealed === undefined) throw new CommitError("no epoch secret is sealed to this device");
  const secret = key.open(sealed.ciphertext, sealInfo(EPOCH_INFO, c, entry));
  if (secret.length !== 32 || !equalBytes(confirmation(secret, c), c.confirmation)) {
    throw new CommitError("the sealed epoch secret does not match the commit's confirmation");
  }
  return secret;
}

/** Past epoch secrets sealed to a newcomer (empty when there are none). */
export function openHistory(c: Commit, newState: GroupState, deviceId: string, key: HpkePrivateKey): Map<bigint, Uint8Array> {
  const entry = ownEntry(newState, deviceId, key);
  const sealed = c.history.find((s) => s.deviceId === entry.deviceId);
  if (sealed === undefined) return new Map();
  const data = key.open(sealed.ciphertext, sealInfo(HISTORY_INFO, c, entry));
  const pairs = decodeAll(data, HISTORY_INFO, "history", (r) =>
    r.list((x) => [x.u64("epoch"), x.blob({ exact: 32, field: "secret" })] as const, { field: "history" }),
  );
  if (pairs.some(([epoch]) => epoch >= c.epoch)) throw new DecryptionError("history names an epoch that is not in the past");
  return new Map(pairs);
}

// -- building commits (the other direction: TypeScript commits Python applies) ---------------

/** What a device holds: its certificate chain and private keys. Never leaves the device. */
export interface DeviceIdentity {
  userCert: Certificate;
  deviceCert: Certificate;
  signingKey: SigningKey;
  hpkeKey: HpkePrivateKey;
}

/** A key package signed by `identity`, optionally with the public half of a fresh init key. */
export function createKeyPackage(
  identity: DeviceIdentity,
  o: { operationId: string; area: string; now: bigint; initKey?: HpkePublicKey },
): KeyPackage {
  const fields = [o.operationId, o.area, identity.userCert, identity.deviceCert, o.now] as const;
  const draft = new KeyPackage(...fields, new Uint8Array(0), o.initKey ?? null);
  return new KeyPackage(...fields, identity.signingKey.sign(draft.toBeSigned()), o.initKey ?? null);
}

function encodeHistory(secrets: ReadonlyMap<bigint, Uint8Array>): Uint8Array {
  const items = [...secrets].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new Writer(HISTORY_INFO).list(items, (w, [epoch, secret]) => w.u64(epoch).blob(secret)).finish();
}

interface CommitDraft {
  instanceId: string;
  area: string;
  epoch: bigint;
  previous: Uint8Array;
  adds: readonly KeyPackage[];
  removes: readonly string[];
  update: KeyPackage | null;
}

/** Validate a draft through the same rules as applyCommit, seal the new secret to every
 * member (and history to newcomers), sign; returns the commit, its state and its secret. */
function finish(
  state: GroupState | null,
  d: CommitDraft,
  charter: Charter,
  committer: DeviceIdentity,
  o: { now: bigint; history: ReadonlyMap<bigint, Uint8Array>; secret: Uint8Array; revoked?: RevokedSet },
): [Commit, GroupState, Uint8Array] {
  const empty = new Uint8Array(0);
  const make = (rosterHashValue: Uint8Array, confirm: Uint8Array, sealed: SealedSecret[], history: SealedSecret[], signature: Uint8Array) =>
    new Commit(
      d.instanceId, charter.operationId, d.area, d.epoch, d.previous, charter.hash, committer.deviceCert.deviceId,
      d.adds, d.removes, d.update, rosterHashValue, confirm, sealed, history, o.now, signature,
    );
  let draft = make(empty, empty, [], [], empty);
  checkFrame(state, draft, charter, o.now);
  const roster = nextRoster(state, draft, charter, o.now, o.revoked ?? NONE);
  if (o.secret.length !== 32) throw new CommitError("an epoch secret is 32 bytes");
  draft = make(rosterHash(roster), confirmation(o.secret, draft), [], [], empty);
  const sealed = roster.map((e) => ({ deviceId: e.deviceId, ciphertext: e.hpkeKey.seal(o.secret, sealInfo(EPOCH_INFO, draft, e)) }));
  const newcomers = new Set(d.adds.map((p) => p.deviceId));
  const bundle = encodeHistory(o.history);
  const history = o.history.size
    ? roster
        .filter((e) => newcomers.has(e.deviceId) && e.deviceId !== committer.deviceCert.deviceId)
        .map((e) => ({ deviceId: e.deviceId, ciphertext: e.hpkeKey.seal(bundle, sealInfo(HISTORY_INFO, draft, e)) }))
    : [];
  draft = make(draft.rosterHash, draft.confirmation, sealed, history, empty);
  const commit = make(draft.rosterHash, draft.confirmation, sealed, history, committer.signingKey.sign(draft.toBeSigned()));
  const next = new GroupState(
    commit.instanceId, commit.operationId, commit.area, commit.epoch, roster, charter.hash, state ? state.hash : NO_STATE, commit.createdAt,
  );
  return [commit, next, o.secret];
}

/** Create `area` at epoch 0 with its coordinator creator (and optional first members). */
export function createArea(
  charter: Charter,
  creator: DeviceIdentity,
  o: { instanceId: string; area: string; now: bigint; adds?: readonly KeyPackage[]; secret?: Uint8Array; initKey?: HpkePublicKey },
): [Commit, GroupState, Uint8Array] {
  const own = createKeyPackage(creator, { operationId: charter.operationId, area: o.area, now: o.now, ...(o.initKey ? { initKey: o.initKey } : {}) });
  const d = { instanceId: o.instanceId, area: o.area, epoch: 0n, previous: NO_STATE, adds: [own, ...(o.adds ?? [])], removes: [], update: null };
  return finish(null, d, charter, creator, { now: o.now, history: new Map(), secret: o.secret ?? crypto.getRandomValues(new Uint8Array(32)) });
}

/** Build, seal and sign the commit to epoch `state.epoch + 1` (adds, removes, history). */
export function createCommit(
  state: GroupState,
  charter: Charter,
  committer: DeviceIdentity,
  o: { now: bigint; adds?: readonly KeyPackage[]; removes?: readonly string[]; history?: ReadonlyMap<bigint, Uint8Array>; secret?: Uint8Array },
): [Commit, GroupState, Uint8Array] {
  const d = {
    instanceId: state.instanceId, area: state.area, epoch: state.epoch + 1n, previous: state.hash,
    adds: o.adds ?? [], removes: o.removes ?? [], update: null,
  };
  const shared = charter.area(state.area).history === "shared";
  return finish(state, d, charter, committer, {
    now: o.now, history: shared ? (o.history ?? new Map()) : new Map(), secret: o.secret ?? crypto.getRandomValues(new Uint8Array(32)),
  });
}
