/**
 * `OpSealClient`: a logged-in browser (or Node) device — the officer's core path on top of
 * the `Verifier` (design §17). It composes small parts: `Api` (HTTP and WebSocket),
 * `SealedStore` (the device's sealed local state), `Verifier` (trust), and the content
 * builders; every method that shows content shows only what the verifier accepted.
 */
import { decryptAttachment, encryptAttachment } from "../attachments.js";
import { b64d, sha256 } from "../encoding.js";
import { CryptoError } from "../errors.js";
import { Header, epochAuthenticator, seal } from "../envelope.js";
import { createKeyPackage } from "../group.js";
import { HpkePrivateKey } from "../hpke.js";
import { Receipt, ReceiptGossip } from "../statements.js";
import { keyIdHex } from "../certs.js";
import { Api, ApiError, ClientError, IntegrityError, type FetchLike, type WebSocketLike } from "./api.js";
import * as content from "./content.js";
import { type DeviceInfo, unlockDevice } from "./device.js";
import { parseInvitation, type Invitation } from "./invitation.js";
import { SealedStore, type KeyValueStore } from "./store.js";
import { Follower, type StreamHandle, type StreamOptions } from "./stream.js";
import { type Clock, type StoredMessage, type SyncReport, Verifier, type Warning } from "./verifier.js";

/** What the client needs from its host; each has a default for browsers and Node 20+. */
export interface ClientOptions {
  /** The API's base URL, when not the one enrolled with (e.g. an app on another origin). */
  server?: string;
  fetch?: FetchLike;
  WebSocket?: WebSocketLike;
  /** Unix time in seconds. */
  clock?: Clock;
}

/** An operation as this device sees it. */
export interface OperationView {
  operationId: string;
  code: string;
  name: string;
  phase: string;
  /** This organisation's role, from the verified charter once pinned (else the server's word). */
  role: string;
  /** Whether the coordinator root is pinned and the charter verified from it. */
  pinned: boolean;
  /** Why the charter served now was refused (the last verified version is used), if it was. */
  problem: string | null;
  areas: AreaView[];
}

export interface AreaView {
  area: string;
  /** This device holds the area's current epoch secret. */
  member: boolean;
  /** The verified charter lets this organisation post here. */
  mayPost: boolean;
  /** The number of the area's newest entry (the server's word). */
  lastSeq: number;
}

/** One entry shown to a person: verified content, a held message, or a warning. */
export type ShownEntry =
  | {
      kind: "message";
      seq: number;
      messageId: string;
      sender: string;
      organisationId: string;
      contentType: string;
      handling: string;
      requiresAck: boolean;
      /** The sender's clock, Unix milliseconds. */
      sentAtMs: number;
      /** The verified, decrypted payload. */
      content: { [key: string]: content.Json };
    }
  | { kind: "held"; seq: number; reason: string }
  | { kind: "warning"; seq: number | null; warning: string; reason: string };

/** A file to upload. */
export interface FileInput {
  bytes: Uint8Array;
  fileName: string;
  mediaType: string;
}

/** A downloaded, verified attachment. */
export interface DownloadedFile {
  bytes: Uint8Array;
  fileName: string;
  mediaType: string;
}

/** An alert with what this device verified about it. */
export interface AlertView {
  message: Extract<ShownEntry, { kind: "message" }>;
  targets: string[];
  action: string;
  deadline: string | null;
  /** This device's organisation is among the targets. */
  addressedToMe: boolean;
  responses: Extract<ShownEntry, { kind: "message" }>[];
}

export interface PostOptions {
  handling?: "H0" | "H1" | "H2" | "H3";
  requiresAck?: boolean;
}

const CHUNK = 4 * 1024 * 1024;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function wallClock(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

export class OpSealClient {
  private constructor(
    readonly info: DeviceInfo,
    readonly api: Api,
    private readonly local: SealedStore,
    private readonly verifier: Verifier,
    private readonly device: Awaited<ReturnType<typeof unlockDevice>>,
    private readonly clock: Clock,
    private readonly webSocket: WebSocketLike | undefined,
  ) {}

  /** Unlock the device enrolled in `store` (see `createDevice`, `completeEnrolment`). */
  static async open(store: KeyValueStore, passphrase: string, o: ClientOptions = {}): Promise<OpSealClient> {
    const device = await unlockDevice(store, passphrase);
    const api = new Api(o.server ?? device.info.server, o.fetch);
    const local = new SealedStore(store, device.storeKey);
    const clock = o.clock ?? wallClock;
    const verifier = new Verifier(api, local, device.identity, device.info.instanceId, clock);
    await verifier.load();
    return new OpSealClient(device.info, api, local, verifier, device, clock, o.WebSocket);
  }

  get deviceId(): string {
    return this.info.deviceId;
  }

  get organisationId(): string {
    return this.info.organisationId;
  }

  /** Log in: sign the server's challenge with the device key. */
  async login(): Promise<void> {
    await this.api.login(this.info.instanceId, this.info.deviceId, this.device.identity.signingKey);
  }

  async logout(): Promise<void> {
    if (this.api.token) await this.api.logout();
  }

  // -- operations --
  /** The operations whose charter lists this organisation, with the areas it reads. */
  async operations(): Promise<OperationView[]> {
    const out: OperationView[] = [];
    for (const op of await this.api.operations()) {
      const detail = await this.api.operation(op.operation_id);
      const pinned = await this.verifier.pinned(op.operation_id);
      let charter = pinned ? await this.verifier.storedCharter(op.operation_id) : undefined;
      let problem: string | null = null;
      try {
        if (pinned) charter = await this.verifier.charter(op.operation_id);
      } catch (exc) {
        if (!(exc instanceof IntegrityError)) throw exc;
        problem = exc.message; // recorded as a charter-refused warning too
      }
      const role = charter ? charter.roleOf(this.organisationId) : op.role;
      const areas: AreaView[] = [];
      for (const a of detail.areas) {
        const state = await this.verifier.latestState(op.operation_id, a.area);
        const secret = state ? await this.verifier.secret(op.operation_id, a.area, state.epoch) : undefined;
        areas.push({
          area: a.area, lastSeq: a.last_seq,
          member: secret !== undefined && state?.member(this.deviceId) !== undefined,
          mayPost: charter !== undefined && charter.mayPost(role, a.area),
        });
      }
      out.push({ operationId: op.operation_id, code: op.code, name: op.name, phase: op.phase, role, pinned, problem, areas });
    }
    return out;
  }

  /** Accept an invitation: check its fingerprint against the one given by a second channel
   * (when given), pin the coordinator root, verify the charter, and ask to join every area
   * this organisation's role reads (a key package with a fresh init key each). */
  async join(invitation: string | Invitation, o: { fingerprint?: string } = {}): Promise<string[]> {
    const inv = typeof invitation === "string" ? parseInvitation(invitation) : invitation;
    const digits = (s: string) => s.replace(/[^0-9]/g, "");
    if (o.fingerprint !== undefined && digits(o.fingerprint) !== digits(inv.rootKey.fingerprint)) {
      throw new ClientError("the fingerprint given does not match the invitation's root key: nothing was pinned");
    }
    if (inv.instanceId !== this.info.instanceId) {
      throw new ClientError(`the invitation is for instance ${inv.instanceId}, not this device's (${this.info.instanceId})`);
    }
    const op = inv.operationId;
    const charter = await this.verifier.pin(op, inv.rootKey.keyId);
    const role = charter.roleOf(this.organisationId);
    const areas = charter.areas.filter((a) => charter.mayRead(role, a.name)).map((a) => a.name);
    for (const area of areas) {
      const state = await this.verifier.latestState(op, area);
      if (state?.member(this.deviceId) !== undefined) continue;
      const init = HpkePrivateKey.generate();
      await this.local.put(`initkey/${op}/${area}/${keyIdHex(init.publicKey.keyId)}`, init.privateBytes());
      const pkg = createKeyPackage(this.device.identity, { operationId: op, area, now: this.clock(), initKey: init.publicKey });
      await this.api.postKeyPackage(op, area, pkg.toBytes());
    }
    return areas;
  }

  // -- reading --
  /** Fetch and verify everything new in this device's areas. */
  sync(): Promise<SyncReport> {
    return this.verifier.sync();
  }

  /** What a person sees of an area, in sequence order: verified content, held messages and
   * warnings (a refused entry shows as a warning with its reason and no content). */
  async read(op: string, area: string): Promise<ShownEntry[]> {
    const shown: ShownEntry[] = [];
    for (const m of await this.verifier.messages(op, area)) shown.push(toShown(m));
    for (const h of await this.verifier.held(op, area)) {
      shown.push({ kind: "held", seq: h.seq, reason: `posted in epoch ${h.epoch}, before this device was admitted: unreadable until a member shares that epoch's key` });
    }
    for (const w of await this.verifier.warnings(op, area)) shown.push({ kind: "warning", seq: w.seq, warning: w.kind, reason: w.reason });
    return shown.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  }

  /** Sync, then what a person sees of one area. */
  async syncArea(op: string, area: string): Promise<ShownEntry[]> {
    await this.sync();
    return this.read(op, area);
  }

  /** Every warning this device recorded (of one operation when given). */
  warnings(op?: string): Promise<Warning[]> {
    return this.verifier.warnings(op);
  }

  // -- posting --
  /** Seal a payload for the area's current epoch and post it; returns its message id. A
   * `wrong_epoch` refusal (a commit arrived meanwhile) syncs and seals it again, once. */
  async postContent(op: string, area: string, contentType: string, payload: content.Json, o: PostOptions & { messageId?: string } = {}): Promise<string> {
    const charter = await this.verifier.charter(op);
    charter.checkMayPost(this.organisationId, area);
    const messageId = o.messageId ?? crypto.randomUUID();
    const plaintext = content.encodePayload(payload);
    for (let attempt = 0; ; attempt++) {
      const envelope = await this.seal(op, area, messageId, contentType, plaintext, o);
      try {
        await this.api.postMessage(op, area, envelope);
        return messageId;
      } catch (exc) {
        if (attempt > 0 || !(exc instanceof ApiError && exc.code === "wrong_epoch")) throw exc;
        await this.sync();
      }
    }
  }

  private async seal(op: string, area: string, messageId: string, contentType: string, plaintext: Uint8Array, o: PostOptions): Promise<Uint8Array> {
    const [state, secret] = await this.verifier.current(op, area);
    const counterKey = `counter/${op}/${area}`;
    const counter = BigInt((await this.local.getText(counterKey)) ?? "0") + 1n;
    await this.local.putText(counterKey, counter.toString()); // kept before sending: never reused
    const header = new Header({
      instanceId: this.info.instanceId, operationId: op, area, epoch: state.epoch, sender: this.deviceId, counter,
      messageId: uuidBytes(messageId), contentType, handling: o.handling ?? "H0", requiresAck: o.requiresAck ?? false,
      clientTimeMs: BigInt(Date.now()), authenticator: epochAuthenticator(secret, state.hash),
    });
    return seal(header, plaintext, secret, this.device.identity.signingKey).toBytes();
  }

  /** Post a text message (Markdown). */
  post(op: string, area: string, markdown: string, o: PostOptions = {}): Promise<string> {
    return this.postContent(op, area, "text", content.text(markdown), o);
  }

  /** Post a seizure record (with an optional photo, uploaded and attached) under its
   * deterministic message id, so the record is one submission however often it is sent. */
  async postSeizure(op: string, record: Record<string, content.Json>, photo?: FileInput, o: PostOptions & { area?: string } = {}): Promise<string> {
    const area = o.area ?? "seizures";
    const draft = { ...record };
    if (photo !== undefined) {
      const attachments = Array.isArray(draft["attachments"]) ? [...draft["attachments"]] : [];
      attachments.push({ ...(await this.upload(op, area, photo)) });
      draft["attachments"] = attachments;
    }
    const payload = content.seizure(draft);
    const id = content.recordMessageId(op, this.organisationId, payload["record_id"] as string);
    return this.postContent(op, area, "seizure", payload, { ...o, messageId: id });
  }

  // -- attachments --
  /** Encrypt a file here and upload its ciphertext; returns the reference to put in a message. */
  async upload(op: string, area: string, file: FileInput): Promise<content.AttachmentRef> {
    const { ciphertext, meta } = encryptAttachment(file.bytes, { mediaType: file.mediaType, fileName: file.fileName });
    const blob = await this.api.createBlob(op, area, ciphertext.length, sha256(ciphertext));
    for (let offset = 0; offset < ciphertext.length; offset += CHUNK) {
      await this.api.putBlobChunk(blob.blob_id, offset, ciphertext.subarray(offset, offset + CHUNK));
    }
    return content.attachmentRef(blob.blob_id, meta);
  }

  /** Download an attachment a verified message references and decrypt it; its ciphertext
   * size and SHA-256 are checked before decryption and the plaintext's after. */
  async download(ref: unknown): Promise<DownloadedFile> {
    const { ref: r, meta } = content.parseAttachment(ref);
    const ciphertext = await this.api.downloadBlob(r.blob_id);
    let bytes: Uint8Array;
    try {
      bytes = decryptAttachment(ciphertext, meta);
    } catch (exc) {
      if (!(exc instanceof CryptoError)) throw exc;
      const reason = `attachment ${r.blob_id} (${meta.fileName}) refused: ${exc.message}`;
      await this.verifier.warn("", "", null, "attachment-refused", reason);
      throw new IntegrityError(reason);
    }
    return { bytes, fileName: meta.fileName, mediaType: meta.mediaType };
  }

  // -- receipts --
  /** Sign and post a receipt (`ack` by default, or `read`) for a verified message. */
  async acknowledge(messageId: string, o: { kind?: "ack" | "read"; sender?: string } = {}): Promise<void> {
    const found = await this.verifier.messagesWithId(messageId, o.sender);
    if (!found.length) throw new ClientError(`message ${messageId} is not among this device's verified messages`);
    if (found.length > 1) throw new ClientError(`message id ${messageId} names more than one verified message: name the sender`);
    const m = found[0]!;
    const receipt = Receipt.create(this.device.identity.signingKey, {
      instanceId: this.info.instanceId, operationId: m.operationId, area: m.area, messageId: uuidBytes(messageId),
      kind: o.kind ?? "ack", deviceId: this.deviceId, signedAt: this.clock(), senderDeviceId: m.sender,
      gossip: await this.gossip(m.operationId, m.area),
    });
    await this.api.postReceipt(receipt.toBytes());
  }

  /** What this device sees of the area (its epoch and authenticator), for fork detection. */
  private async gossip(op: string, area: string): Promise<ReceiptGossip | null> {
    const state = await this.verifier.latestState(op, area);
    const secret = state ? await this.verifier.secret(op, area, state.epoch) : undefined;
    return state && secret ? new ReceiptGossip(state.epoch, epochAuthenticator(secret, state.hash)) : null;
  }

  // -- alerts --
  /** The verified alerts of an area, each with its verified responses. */
  async alerts(op: string, area: string): Promise<AlertView[]> {
    const shown = (await this.verifier.messages(op, area)).map(toShown) as Extract<ShownEntry, { kind: "message" }>[];
    const out: AlertView[] = [];
    for (const m of shown.filter((s) => s.contentType === "alert")) {
      const targets = Array.isArray(m.content["targets"]) ? (m.content["targets"].filter((t) => typeof t === "string") as string[]) : [];
      out.push({
        message: m, targets, action: String(m.content["action"] ?? ""),
        deadline: typeof m.content["deadline"] === "string" ? m.content["deadline"] : null,
        addressedToMe: targets.includes(this.organisationId),
        responses: shown.filter((r) => r.contentType === "alert-response" && r.content["alert_id"] === m.messageId),
      });
    }
    return out;
  }

  /** Answer a verified alert addressed to this organisation; returns the response's id. */
  async respond(op: string, area: string, alertId: string, outcome: string, o: PostOptions = {}): Promise<string> {
    const payload = content.alertResponse(alertId, outcome);
    const alert = (await this.alerts(op, area)).find((a) => a.message.messageId === alertId);
    if (alert === undefined) throw new ClientError(`${alertId} is not a verified alert of ${op}/${area}: sync first`);
    if (!alert.addressedToMe) throw new ClientError(`alert ${alertId} is addressed to ${alert.targets.join(", ")}, not to ${this.organisationId}`);
    return this.postContent(op, area, "alert-response", payload, o);
  }

  // -- real time --
  /** Follow the server's WebSocket stream from the last verified cursor; every entry goes
   * through the verifier before `onEntry` is called. Reconnects with the cursor (backoff
   * 0.5 s doubling to 10 s) until `close()`. */
  stream(o: StreamOptions = {}): StreamHandle {
    const WS = this.webSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
    if (WS === undefined) throw new ClientError("no WebSocket here: pass one in ClientOptions (Node 20 needs --experimental-websocket)");
    return new Follower(this.api, this.verifier, WS, () => this.login(), o).start();
  }

  /** The messages verified in an area, as stored (for tools). */
  messages(op: string, area: string): Promise<StoredMessage[]> {
    return this.verifier.messages(op, area);
  }
}

function uuidBytes(id: string): Uint8Array {
  const hex = id.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new ClientError(`'${id}' is not a message id (UUID)`);
  return Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

function toShown(m: StoredMessage): ShownEntry {
  let payload: unknown;
  try {
    payload = JSON.parse(utf8.decode(b64d(m.plaintext)));
  } catch {
    payload = undefined;
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return { kind: "warning", seq: m.seq, warning: "content-refused", reason: `message ${m.messageId} is not a JSON object` };
  }
  return {
    kind: "message", seq: m.seq, messageId: m.messageId, sender: m.sender, organisationId: m.organisationId,
    contentType: m.contentType, handling: m.handling, requiresAck: m.requiresAck, sentAtMs: m.clientTimeMs,
    content: payload as { [key: string]: content.Json },
  };
}
