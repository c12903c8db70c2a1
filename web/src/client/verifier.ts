/**
 * The trust core of a browser device (design §14 "What the client trusts", §17), the same
 * rules as Python's `client/verifier.py`: every charter version is verified from the
 * coordinator root pinned at join; every commit goes through `applyCommit` before its epoch
 * secret is opened; every message is checked for its area and operation, for the epoch of
 * the last commit accepted at its place in the sequence, for its sender in that epoch's roster
 * (not revoked when it wrote), its signature, the epoch authenticator (forks), the sender's
 * post right in the verified charter, decryption and replay. Skipped sequence numbers are
 * reported. A message of an epoch whose secret the device lacks is held until a commit brings
 * that secret. Anything refused becomes a warning (kind and reason) and never content.
 */
import { Charter, verifyCharterChain, verifySuccessor } from "../charter.js";
import { b64d, b64e, equalBytes } from "../encoding.js";
import { Envelope, ReplayTracker, epochAuthenticator, openEnvelope } from "../envelope.js";
import { CryptoError, ForkError } from "../errors.js";
import { Commit, type DeviceIdentity, GroupState, KeyPackage, applyCommit, openEpochSecret, openHistory } from "../group.js";
import { HpkePrivateKey } from "../hpke.js";
import { keyIdHex } from "../certs.js";
import { type Api, ClientError, IntegrityError, type WireEvent } from "./api.js";
import { Revocations } from "./revocations.js";
import { type SealedStore, padded } from "./store.js";

/** A verified, decrypted message as the device keeps it. */
export interface StoredMessage {
  operationId: string;
  area: string;
  seq: number;
  messageId: string;
  sender: string;
  organisationId: string;
  epoch: string;
  contentType: string;
  handling: string;
  requiresAck: boolean;
  clientTimeMs: number;
  /** The plaintext, base64url. */
  plaintext: string;
}

/** Something the server served that was refused, or that may be missing. */
export interface Warning {
  id: number;
  operationId: string;
  area: string;
  seq: number | null;
  /** e.g. message-refused, commit-refused, fork, gap, charter-refused, revocation-refused */
  kind: string;
  /** What failed, in plain words. */
  reason: string;
  /** Unix time in seconds. */
  at: number;
  /** A later verification set it right (a skipped entry arrived); not shown any more. */
  resolved?: boolean;
}

/** What one sync saw. */
export interface SyncReport {
  entries: number;
  messages: number;
  commits: number;
  keyPackages: number;
  held: number;
  refused: number;
}

export type Clock = () => bigint;

function emptyReport(): SyncReport {
  return { entries: 0, messages: 0, commits: 0, keyPackages: 0, held: 0, refused: 0 };
}

/** A UUID's 16 bytes as its canonical text. */
export function uuidText(bytes: Uint8Array): string {
  const h = keyIdHex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const area2 = (op: string, area: string) => `${op}/${area}`;
/** The longest gap whose entries are listed and asked for again (as Python). */
const MAX_MISSING = 10_000;

export class Verifier {
  readonly revocations: Revocations;
  private readonly charters = new Map<string, Charter>();
  private tracker = new ReplayTracker();
  private readonly parsed = new Map<string, GroupState>();

  constructor(
    private readonly api: Api,
    private readonly local: SealedStore,
    private readonly identity: DeviceIdentity,
    private readonly instanceId: string,
    private readonly clock: Clock,
  ) {
    this.revocations = new Revocations(api, local, (reason) => this.warn("", "", null, "revocation-refused", reason).then(() => {}));
  }

  get deviceId(): string {
    return this.identity.deviceCert.deviceId;
  }

  /** Load what is kept between sessions (the replay tracker). */
  async load(): Promise<void> {
    const saved = await this.local.getJSON<[string, string, [string, string][]][]>("tracker");
    this.tracker = saved ? ReplayTracker.fromJSON(saved) : new ReplayTracker();
  }

  private async saveTracker(): Promise<void> {
    await this.local.putJSON("tracker", this.tracker.toJSON());
  }

  // -- warnings --
  async warn(op: string, area: string, seq: number | null, kind: string, reason: string): Promise<Warning> {
    const id = ((await this.local.getJSON<number>("warning-count")) ?? 0) + 1;
    const warning: Warning = { id, operationId: op, area, seq, kind, reason, at: Number(this.clock()) };
    await this.local.putJSON(`warn/${op}/${area}/${padded(id)}`, warning);
    await this.local.putJSON("warning-count", id);
    return warning;
  }

  /** The open warnings recorded for one area (or, with area "", about the operation itself). */
  async warnings(op?: string, area?: string): Promise<Warning[]> {
    const prefix = op === undefined ? "warn/" : area === undefined ? `warn/${op}/` : `warn/${op}/${area}/`;
    const out: Warning[] = [];
    for (const key of await this.local.keys(prefix)) {
      const warning = (await this.local.getJSON<Warning>(key))!;
      if (!warning.resolved) out.push(warning);
    }
    return out.sort((a, b) => a.id - b.id);
  }

  // -- charters --
  /** Pin the coordinator organisation's root (from the invitation) and verify the charter
   * from it; a root whose charter does not verify is not kept. */
  async pin(op: string, rootKeyId: Uint8Array): Promise<Charter> {
    const previous = await this.local.get(`pin/${op}`);
    const verified = await this.local.getJSON<string[]>(`charters/${op}`);
    if (verified?.length && previous !== undefined && !equalBytes(previous, rootKeyId)) {
      throw new IntegrityError(`operation '${op}' is already pinned to another coordinator root, whose charter verified`);
    }
    await this.local.put(`pin/${op}`, rootKeyId);
    try {
      return await this.charter(op, true);
    } catch (exc) {
      await this.local.delete(`pin/${op}`);
      throw exc;
    }
  }

  async pinned(op: string): Promise<boolean> {
    return (await this.local.get(`pin/${op}`)) !== undefined;
  }

  /** The latest charter verified earlier, if any. */
  async storedCharter(op: string): Promise<Charter | undefined> {
    const cached = this.charters.get(op);
    if (cached) return cached;
    const known = await this.local.getJSON<string[]>(`charters/${op}`);
    return known?.length ? Charter.fromBytes(b64d(known[known.length - 1]!)) : undefined;
  }

  /** The latest charter version, verified from the pinned root; a refusal is recorded as a
   * `charter-refused` warning and raised. */
  async charter(op: string, refresh = false): Promise<Charter> {
    const cached = this.charters.get(op);
    if (cached && !refresh) return cached;
    const pinned = await this.local.get(`pin/${op}`);
    if (pinned === undefined) throw new ClientError(`operation '${op}' is not pinned: join it with the coordinator's invitation first`);
    const known = ((await this.local.getJSON<string[]>(`charters/${op}`)) ?? []).map((t) => Charter.fromBytes(b64d(t)));
    const served = (await this.api.charterVersions(op)).map((b) => Charter.fromBytes(b));
    const now = this.clock();
    let chain: Charter[];
    try {
      let base = known;
      if (!base.length) {
        const first = served.slice(0, 1);
        // version 1 is held to the revocations in force when it was issued, verified
        // against the roots it lists itself
        const revoked = first[0] ? (await this.revocations.revoked(first[0])).at(first[0].issuedAt) : new Set<string>();
        verifyCharterChain(first, pinned, now, revoked);
        base = first;
      }
      chain = [...base, ...served.filter((c) => c.version > base[base.length - 1]!.version)];
      for (let i = base.length; i < chain.length; i++) {
        const prev = chain[i - 1]!;
        verifySuccessor(prev, chain[i]!, now, (await this.revocations.revoked(prev)).at(chain[i]!.issuedAt));
      }
      for (let i = 0; i < Math.min(known.length, served.length); i++) {
        if (!equalBytes(known[i]!.hash, served[i]!.hash)) throw new CryptoError(`charter version ${known[i]!.version} was rewritten`);
      }
    } catch (exc) {
      if (!(exc instanceof CryptoError)) throw exc;
      await this.warn(op, "", null, "charter-refused", exc.message);
      throw new IntegrityError(`charter of '${op}' refused: ${exc.message}`);
    }
    await this.local.putJSON(`charters/${op}`, chain.map((c) => b64e(c.toBytes())));
    const latest = chain[chain.length - 1]!;
    this.charters.set(op, latest);
    return latest;
  }

  // -- sync --
  private turn: Promise<unknown> = Promise.resolve();

  /** Run `fn` after every earlier call of it has settled: a sync and the stream never
   * verify entries at the same time (positions, the tracker and the cursor stay consistent). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn, fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** Fetch everything new in this device's areas and verify it. */
  sync(): Promise<SyncReport> {
    return this.exclusive(() => this.syncNow());
  }

  private async syncNow(): Promise<SyncReport> {
    const report = emptyReport();
    await this.revocations.refresh();
    let cursor = (await this.local.getText("sync-cursor")) ?? "";
    for (;;) {
      const page = await this.api.sync(cursor, 1000);
      for (const event of page.events) await this.ingest(event, report);
      cursor = page.cursor;
      await this.saveTracker();
      await this.local.putText("sync-cursor", cursor);
      if (!page.more) break;
    }
    await this.refillGaps(report);
    await this.saveTracker();
    return report;
  }

  /** The cursor up to which everything was verified (for a stream to resume from). */
  async cursor(): Promise<string> {
    return (await this.local.getText("sync-cursor")) ?? "";
  }

  /** Record that everything up to `cursor` was ingested (by the stream). */
  async advance(cursor: string): Promise<void> {
    await this.saveTracker();
    await this.local.putText("sync-cursor", cursor);
  }

  /** Verify one area entry and record it, or a warning, in the local store. An entry the
   * server skipped earlier (a `gap`) is verified when it arrives late. */
  async ingest(entry: WireEvent, report: SyncReport = emptyReport()): Promise<void> {
    const { operation_id: op, area, seq, kind } = entry;
    const position = (await this.local.getJSON<number>(`position/${area2(op, area)}`)) ?? 0;
    if (seq <= position) {
      // already seen (a replayed page or a resumed stream), unless it is one the server skipped
      if (await this.fillMissing(op, area, seq)) await this.verifyEntry(op, area, seq, kind, entry.body, report, true);
      return;
    }
    if (seq !== position + 1) {
      const warning = await this.warn(op, area, seq, "gap", `the server skipped entries ${position + 1}..${seq - 1} of ${area}`);
      await this.addMissing(op, area, position + 1, seq - 1, warning.id);
    }
    await this.verifyEntry(op, area, seq, kind, entry.body, report, false);
    await this.local.putJSON(`position/${area2(op, area)}`, seq);
  }

  /** Verify and take one entry, or record its refusal. A `late` commit or key package is not
   * applied out of order (the commits applied since hold the group state). */
  private async verifyEntry(op: string, area: string, seq: number, kind: string, text: string, report: SyncReport, late: boolean): Promise<void> {
    report.entries += 1;
    if (late && kind !== "message") return;
    try {
      const body = b64d(text, "body");
      if (kind === "commit") {
        await this.takeCommit(op, area, body);
        report.commits += 1;
      } else if (kind === "message") {
        if (await this.takeMessage(op, area, seq, body)) report.messages += 1;
        else report.held += 1;
      } else if (kind === "key-package") {
        await this.takeKeyPackage(op, area, body);
        report.keyPackages += 1;
      }
      // receipts: the fork gossip they carry is checked by the Python client only (§17)
    } catch (exc) {
      if (!(exc instanceof CryptoError || exc instanceof IntegrityError)) throw exc;
      report.refused += 1;
      await this.warn(op, area, seq, exc instanceof ForkError ? "fork" : `${kind}-refused`, exc.message);
    }
  }

  // -- gaps: entries the server skipped, asked for again --
  private async missing(op: string, area: string): Promise<Record<string, number[]>> {
    return (await this.local.getJSON<Record<string, number[]>>(`missing/${area2(op, area)}`)) ?? {};
  }

  private async addMissing(op: string, area: string, first: number, last: number, warning: number): Promise<void> {
    if (last - first >= MAX_MISSING) return; // too long to list: the gap stays open
    const missing = await this.missing(op, area);
    missing[warning] = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    await this.local.putJSON(`missing/${area2(op, area)}`, missing);
  }

  /** Whether `seq` was skipped; if so it counts as arrived now, and a gap whose entries all
   * arrived has its warning resolved. */
  private async fillMissing(op: string, area: string, seq: number): Promise<boolean> {
    const missing = await this.missing(op, area);
    const found = Object.entries(missing).find(([, seqs]) => seqs.includes(seq));
    if (found === undefined) return false;
    const [warning, seqs] = found;
    missing[warning] = seqs.filter((s) => s !== seq);
    if (!missing[warning].length) {
      delete missing[warning];
      await this.resolve(op, area, Number(warning));
    }
    await this.local.putJSON(`missing/${area2(op, area)}`, missing);
    return true;
  }

  private async resolve(op: string, area: string, id: number): Promise<void> {
    const key = `warn/${op}/${area}/${padded(id)}`;
    const warning = await this.local.getJSON<Warning>(key);
    if (warning) await this.local.putJSON(key, { ...warning, resolved: true });
  }

  /** Ask each area's `events` again for the entries the server skipped. */
  async refillGaps(report: SyncReport): Promise<void> {
    for (const key of await this.local.keys("missing/")) {
      const [op, area] = key.slice("missing/".length).split("/") as [string, string];
      const all = Object.values(await this.missing(op, area)).flat();
      if (!all.length) continue;
      let after = Math.min(...all) - 1;
      const last = Math.max(...all);
      try {
        while (after < last) {
          const events = await this.api.events(op, area, after, 500);
          if (!events.length) break;
          for (const event of events) if (event.seq <= last) await this.ingest(event, report);
          after = events[events.length - 1]!.seq;
        }
      } catch (exc) {
        if (!(exc instanceof ClientError)) throw exc; // no longer readable: the gap stays open
      }
    }
  }

  private async state(op: string, area: string, epoch: bigint): Promise<GroupState | undefined> {
    const key = `state/${area2(op, area)}/${padded(epoch)}`;
    let state = this.parsed.get(key);
    if (state === undefined) {
      const raw = await this.local.get(key);
      if (raw === undefined) return undefined;
      state = GroupState.fromBytes(raw);
      this.parsed.set(key, state);
    }
    return state;
  }

  /** The latest verified state of an area, if any. */
  async latestState(op: string, area: string): Promise<GroupState | undefined> {
    const epoch = await this.local.getText(`latest/${area2(op, area)}`);
    return epoch === undefined ? undefined : this.state(op, area, BigInt(epoch));
  }

  async secret(op: string, area: string, epoch: bigint): Promise<Uint8Array | undefined> {
    return this.local.get(`secret/${area2(op, area)}/${padded(epoch)}`);
  }

  private async sequenceEpoch(op: string, area: string): Promise<bigint | undefined> {
    const raw = await this.local.getText(`sequence-epoch/${area2(op, area)}`);
    return raw === undefined ? undefined : BigInt(raw);
  }

  /** This device's HPKE keys for an area: its certificate's key and its init keys. */
  private async hpkeKeys(op: string, area: string): Promise<HpkePrivateKey[]> {
    const keys = [this.identity.hpkeKey];
    for (const k of await this.local.keys(`initkey/${area2(op, area)}/`)) keys.push(new HpkePrivateKey((await this.local.get(k))!));
    return keys;
  }

  private async takeCommit(op: string, area: string, body: Uint8Array): Promise<void> {
    const commit = Commit.fromBytes(body);
    let charter = await this.charter(op);
    if (!equalBytes(commit.charterHash, charter.hash)) charter = await this.charter(op, true);
    const state = (await this.latestState(op, area)) ?? null;
    const revoked = (await this.revocations.revoked(charter)).at(commit.createdAt);
    const next = applyCommit(state, commit, charter, { now: this.clock(), instanceId: this.instanceId, revoked });
    const where = area2(op, area);
    const entry = next.member(this.deviceId);
    let secrets = new Map<bigint, Uint8Array>();
    if (entry !== undefined) {
      const key = (await this.hpkeKeys(op, area)).find((k) => equalBytes(k.publicKey.raw, entry.hpkeKey.raw));
      if (key === undefined) throw new IntegrityError(`this device holds no key for its entry in epoch ${commit.epoch} of ${area}`);
      secrets = openHistory(commit, next, this.deviceId, key);
      secrets.set(commit.epoch, openEpochSecret(commit, next, this.deviceId, key));
    }
    // every check passed: only now is anything of the commit kept
    await this.local.put(`state/${where}/${padded(commit.epoch)}`, next.toBytes());
    await this.local.putText(`latest/${where}`, commit.epoch.toString());
    await this.local.putText(`sequence-epoch/${where}`, commit.epoch.toString());
    for (const [epoch, secret] of secrets) await this.local.put(`secret/${where}/${padded(epoch)}`, secret);
    if (entry !== undefined) await this.settleInitKeys(op, area, entry.hpkeKey.raw);
    await this.releaseHeld(op, area, charter);
  }

  /** Once the roster lists one of this device's init keys, the others are no longer needed. */
  private async settleInitKeys(op: string, area: string, inUse: Uint8Array): Promise<void> {
    for (const k of await this.local.keys(`initkey/${area2(op, area)}/`)) {
      const key = new HpkePrivateKey((await this.local.get(k))!);
      if (!equalBytes(key.publicKey.raw, inUse)) await this.local.delete(k);
    }
  }

  /** Open messages held for want of their epoch secret, now that history may have brought it
   * (each was already checked against its place in the sequence). */
  private async releaseHeld(op: string, area: string, charter: Charter): Promise<void> {
    for (const key of await this.local.keys(`held/${area2(op, area)}/`)) {
      const held = (await this.local.getJSON<{ seq: number; epoch: string; body: string }>(key))!;
      if ((await this.secret(op, area, BigInt(held.epoch))) === undefined) continue;
      try {
        await this.openMessage(op, area, held.seq, Envelope.fromBytes(b64d(held.body)), charter);
      } catch (exc) {
        if (!(exc instanceof CryptoError || exc instanceof IntegrityError)) throw exc;
        await this.warn(op, area, held.seq, exc instanceof ForkError ? "fork" : "message-refused", exc.message);
      }
      await this.local.delete(key);
    }
  }

  /** Returns false when the message is held (its epoch's secret is not here yet). */
  private async takeMessage(op: string, area: string, seq: number, body: Uint8Array): Promise<boolean> {
    const envelope = Envelope.fromBytes(body);
    const h = envelope.header;
    if (h.operationId !== op || h.area !== area) {
      throw new IntegrityError(`message for ${h.operationId}/${h.area} served in ${op}/${area}`);
    }
    const current = await this.sequenceEpoch(op, area);
    if (current !== undefined && h.epoch !== current) {
      throw new IntegrityError(`message of epoch ${h.epoch} served while ${area} is at epoch ${current}`);
    }
    if ((await this.state(op, area, h.epoch)) === undefined) throw new IntegrityError(`no verified state for epoch ${h.epoch} of ${area}`);
    if ((await this.secret(op, area, h.epoch)) === undefined) {
      // posted before this device was admitted: a shared area's history may bring the key
      await this.local.putJSON(`held/${area2(op, area)}/${padded(seq)}`, { seq, epoch: h.epoch.toString(), body: b64e(body) });
      return false;
    }
    await this.openMessage(op, area, seq, envelope, await this.charter(op));
    return true;
  }

  private async openMessage(op: string, area: string, seq: number, envelope: Envelope, charter: Charter): Promise<void> {
    const h = envelope.header;
    const state = await this.state(op, area, h.epoch);
    const secret = await this.secret(op, area, h.epoch);
    if (state === undefined || secret === undefined) throw new IntegrityError(`no verified key for epoch ${h.epoch} of ${area}`);
    const sender = state.member(h.sender);
    const revoked = (await this.revocations.revoked(charter)).at(h.clientTimeMs / 1000n);
    if (sender !== undefined && sender.isRevoked(revoked)) {
      throw new IntegrityError(`sender '${h.sender}' was revoked before it wrote this`);
    }
    const view = {
      instanceId: this.instanceId, operationId: op, area, epoch: h.epoch,
      member: (d: string) => state.member(d),
      authenticator: epochAuthenticator(secret, state.hash),
      checkMayPost: (org: string, a: string) => charter.checkMayPost(org, a),
    };
    const plaintext = await openEnvelope(envelope, view, secret);
    this.tracker.record(op, area, h.sender, h.counter);
    // kept before the message and its position: a crash in between never forgets a counter
    // whose message was taken (a browser store has no transaction across keys)
    await this.saveTracker();
    const message: StoredMessage = {
      operationId: op, area, seq, messageId: uuidText(h.messageId), sender: h.sender,
      organisationId: sender!.organisationId, epoch: h.epoch.toString(), contentType: h.contentType,
      handling: h.handling, requiresAck: h.requiresAck, clientTimeMs: Number(h.clientTimeMs), plaintext: b64e(plaintext),
    };
    await this.local.putJSON(`msg/${area2(op, area)}/${padded(seq)}`, message);
    await this.local.putJSON(`msgid/${message.messageId}/${h.sender}`, [op, area, seq]);
  }

  /** Check a join request as an admitting client would, so a forged device is reported. */
  private async takeKeyPackage(op: string, area: string, body: Uint8Array): Promise<void> {
    const pkg = KeyPackage.fromBytes(body);
    if (pkg.operationId !== op || pkg.area !== area) {
      throw new IntegrityError(`key package for ${pkg.operationId}/${pkg.area} served in ${op}/${area}`);
    }
    let charter = await this.charter(op);
    try {
      pkg.verify(charter, this.clock(), await this.revocations.revoked(charter));
    } catch {
      charter = await this.charter(op, true); // the cached charter may predate the device's organisation
      pkg.verify(charter, this.clock(), await this.revocations.revoked(charter));
    }
  }

  // -- what the device holds --
  async messages(op: string, area: string): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    for (const key of await this.local.keys(`msg/${area2(op, area)}/`)) out.push((await this.local.getJSON<StoredMessage>(key))!);
    return out;
  }

  async held(op: string, area: string): Promise<{ seq: number; epoch: string }[]> {
    const out: { seq: number; epoch: string }[] = [];
    for (const key of await this.local.keys(`held/${area2(op, area)}/`)) {
      const h = (await this.local.getJSON<{ seq: number; epoch: string }>(key))!;
      out.push({ seq: h.seq, epoch: h.epoch });
    }
    return out;
  }

  /** The verified messages with this id (of `sender` when given). */
  async messagesWithId(messageId: string, sender?: string): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    for (const key of await this.local.keys(`msgid/${messageId}/`)) {
      if (sender !== undefined && key !== `msgid/${messageId}/${sender}`) continue;
      const [op, area, seq] = (await this.local.getJSON<[string, string, number]>(key))!;
      const m = await this.local.getJSON<StoredMessage>(`msg/${op}/${area}/${padded(seq)}`);
      if (m) out.push(m);
    }
    return out;
  }

  /** Per sender, counters skipped and not yet arrived in an area: possibly missing messages. */
  gaps(op: string, area: string, sender: string): (bigint | [bigint, bigint])[] {
    return this.tracker.gaps(op, area, sender);
  }

  /** This device's latest verified state in an area and its epoch secret, to post. */
  async current(op: string, area: string): Promise<[GroupState, Uint8Array]> {
    const state = await this.latestState(op, area);
    if (state === undefined) throw new ClientError(`this device is not a member of ${op}/${area} yet: wait to be admitted, then sync`);
    const secret = await this.secret(op, area, state.epoch);
    if (secret === undefined || state.member(this.deviceId) === undefined) {
      throw new ClientError(`this device is not a member of ${op}/${area} (epoch ${state.epoch})`);
    }
    return [state, secret];
  }
}
