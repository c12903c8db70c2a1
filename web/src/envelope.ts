/**
 * Message envelopes, as opseal.crypto.envelope (design §5): the header (both encodings,
 * `opseal/v1/msg-header` and `/msg-header/2` with the epoch authenticator), the envelope
 * `opseal/v1/msg || header || ciphertext` signed by the sender device, the per-message key
 * `HKDF-SHA256(epoch secret, "opseal/v1/msg-key" || SHA-256(header), 44)` and AES-256-GCM with
 * the header as associated data.
 *
 * `openEnvelope` makes the checks of the Python `open_envelope` in the same order — context,
 * sender in the epoch's roster, signature, epoch authenticator (fork), post right, decryption —
 * against an `EpochView` (what a verified group state says) instead of a GroupState, whose
 * port (group.py: states, commits, welcome secrets) is not built yet. Replay tracking is a
 * separate step, as in Python (tracker.record after a successful open).
 */
import { gcm } from "@noble/ciphers/aes.js";
import { ContextError, DecodeError, DecryptionError, EnvelopeError, ForkError, ReplayError } from "./errors.js";
import { Reader, Writer, concat, decodeAll, equalBytes, label, lengthPrefixed, sha256 } from "./encoding.js";
import { type SigningKey, type VerifyKey, hkdfSha256 } from "./keys.js";

export const CONTENT_TYPES = ["text", "seizure", "document", "alert", "alert-response", "release", "correction"] as const;
export const HANDLING_CODES = ["H0", "H1", "H2", "H3"] as const;
export const MAX_PLAINTEXT = 4 * 1024 * 1024;
const HEADER = label("msg-header");
const HEADER_2 = label("msg-header/2");
const MSG = label("msg");
const MSG_KEY = label("msg-key");
const AUTHENTICATOR = label("epoch-authenticator");

export interface HeaderFields {
  instanceId: string;
  operationId: string;
  area: string;
  epoch: bigint;
  sender: string;
  counter: bigint;
  /** The 16 bytes of the message's UUID. */
  messageId: Uint8Array;
  contentType: string;
  handling: string;
  requiresAck: boolean;
  clientTimeMs: bigint;
  /** The sender's epoch authenticator (second encoding); empty in first-encoding headers. */
  authenticator: Uint8Array;
}

/** The authenticated, server-visible part of a message. */
export class Header implements HeaderFields {
  readonly instanceId!: string;
  readonly operationId!: string;
  readonly area!: string;
  readonly epoch!: bigint;
  readonly sender!: string;
  readonly counter!: bigint;
  readonly messageId!: Uint8Array;
  readonly contentType!: string;
  readonly handling!: string;
  readonly requiresAck!: boolean;
  readonly clientTimeMs!: bigint;
  readonly authenticator!: Uint8Array;
  #encoded: Uint8Array | undefined;

  constructor(fields: HeaderFields) {
    Object.assign(this, fields);
    if (this.authenticator.length && this.authenticator.length !== 32) {
      throw new DecodeError("message header: the epoch authenticator is 32 bytes");
    }
    if (!(CONTENT_TYPES as readonly string[]).includes(this.contentType)) {
      throw new DecodeError(`message header: unknown content type '${this.contentType}'`);
    }
    if (!(HANDLING_CODES as readonly string[]).includes(this.handling)) {
      throw new DecodeError(`message header: unknown handling code '${this.handling}'`);
    }
    if (this.counter < 1n) throw new DecodeError("message header: counters start at 1");
    if (this.messageId.length !== 16) throw new DecodeError("message header: message id is 16 bytes");
  }

  get encoded(): Uint8Array {
    if (this.#encoded === undefined) {
      const w = new Writer(this.authenticator.length ? HEADER_2 : HEADER);
      w.text(this.instanceId).text(this.operationId).text(this.area);
      w.u64(this.epoch).text(this.sender).u64(this.counter).blob(this.messageId);
      w.text(this.contentType).text(this.handling).bool(this.requiresAck).u64(this.clientTimeMs);
      if (this.authenticator.length) w.blob(this.authenticator);
      this.#encoded = w.finish();
    }
    return this.#encoded;
  }

  static fromBytes(data: Uint8Array): Header {
    const second = lengthPrefixed(HEADER_2);
    const isSecond = equalBytes(data.slice(0, second.length), second);
    return decodeAll(data, isSecond ? HEADER_2 : HEADER, "message header", (r: Reader) => {
      const fields = {
        instanceId: r.text({ maxLen: 128, field: "instance_id" }),
        operationId: r.text({ maxLen: 128, field: "operation_id" }),
        area: r.text({ maxLen: 64, field: "area" }),
        epoch: r.u64("epoch"),
        sender: r.text({ maxLen: 128, field: "sender" }),
        counter: r.u64("counter"),
        messageId: r.blob({ exact: 16, field: "message_id" }),
        contentType: r.text({ maxLen: 32, field: "content_type" }),
        handling: r.text({ maxLen: 4, field: "handling" }),
        requiresAck: r.bool("requires_ack"),
        clientTimeMs: r.u64("client_time_ms"),
        authenticator: new Uint8Array(0) as Uint8Array,
      };
      new Header(fields); // the first encoding's checks, before reading further (as Python)
      if (isSecond) fields.authenticator = r.blob({ exact: 32, field: "authenticator" });
      return new Header(fields);
    });
  }
}

/** A sealed message: header, ciphertext and the sender device's signature. */
export class Envelope {
  constructor(
    readonly header: Header,
    readonly ciphertext: Uint8Array,
    readonly signature: Uint8Array,
  ) {}

  toBeSigned(): Uint8Array {
    return new Writer(MSG).blob(this.header.encoded).blob(this.ciphertext).finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Envelope {
    return decodeAll(data, MSG, "envelope", (r: Reader) => {
      const header = Header.fromBytes(r.blob({ maxLen: 2048, field: "header" }));
      const ciphertext = r.blob({ maxLen: MAX_PLAINTEXT + 16, field: "ciphertext" });
      return new Envelope(header, ciphertext, r.blob({ exact: 64, field: "signature" }));
    });
  }

  /** Throws SignatureError unless the sender device's key signs the envelope. */
  async verifySignature(key: VerifyKey): Promise<void> {
    await key.verifyAsync(this.signature, this.toBeSigned(), "message signature");
  }
}

function messageKey(epochSecret: Uint8Array, header: Header): [Uint8Array, Uint8Array] {
  const okm = hkdfSha256(epochSecret, concat(MSG_KEY, sha256(header.encoded)), 44);
  return [okm.slice(0, 32), okm.slice(32)];
}

/** What members on the same branch of an epoch share: HKDF of the epoch secret over the
 * group state's hash (opseal.crypto.group.epoch_authenticator). */
export function epochAuthenticator(epochSecret: Uint8Array, stateHash: Uint8Array): Uint8Array {
  return hkdfSha256(epochSecret, new Writer(AUTHENTICATOR).blob(stateHash).finish(), 32);
}

/** Encrypt `plaintext` under the epoch secret and sign the result as the sender device. */
export function seal(header: Header, plaintext: Uint8Array, epochSecret: Uint8Array, signingKey: SigningKey): Envelope {
  if (plaintext.length > MAX_PLAINTEXT) throw new EnvelopeError(`message larger than ${MAX_PLAINTEXT} bytes; use an attachment`);
  const [key, nonce] = messageKey(epochSecret, header);
  const ciphertext = gcm(key, nonce, header.encoded).encrypt(plaintext);
  const draft = new Envelope(header, ciphertext, new Uint8Array(0));
  return new Envelope(header, ciphertext, signingKey.sign(draft.toBeSigned()));
}

const subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle;

/** AES-256-GCM decryption under a message key: WebCrypto's where there is one (the key is
 * imported for this message only), noble's elsewhere. Throws when the tag does not match. */
async function decryptGcm(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  if (subtle === undefined) return gcm(key, nonce, aad).decrypt(ciphertext);
  const webKey = await subtle.importKey("raw", key as BufferSource, "AES-GCM", false, ["decrypt"]);
  const params = { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource };
  return new Uint8Array(await subtle.decrypt(params, webKey, ciphertext as BufferSource));
}

/** What a verified group state says about one epoch of one area. */
export interface EpochView {
  instanceId: string;
  operationId: string;
  area: string;
  epoch: bigint;
  /** The signing key and organisation of each device in the epoch's roster. */
  member(deviceId: string): { signingKey: VerifyKey; organisationId: string } | undefined;
  /** The epoch authenticator this device derives for its branch. */
  authenticator: Uint8Array;
  /** Throws PolicyError unless the organisation may post in the area (the charter's rule). */
  checkMayPost?: (organisationId: string, area: string) => void;
}

/** Verify and decrypt an envelope received for the epoch `view` describes. */
export async function openEnvelope(envelope: Envelope, view: EpochView, epochSecret: Uint8Array): Promise<Uint8Array> {
  const h = envelope.header;
  if (h.instanceId !== view.instanceId) throw new ContextError("message belongs to another instance");
  if (h.operationId !== view.operationId) throw new ContextError("message belongs to another operation");
  if (h.area !== view.area) throw new ContextError(`message for area '${h.area}' received in area '${view.area}'`);
  if (h.epoch !== view.epoch) throw new ContextError(`message for epoch ${h.epoch} opened in epoch ${view.epoch}`);
  const sender = view.member(h.sender);
  if (sender === undefined) throw new EnvelopeError(`sender '${h.sender}' is not a member of epoch ${view.epoch}`);
  await envelope.verifySignature(sender.signingKey);
  if (h.authenticator.length && !equalBytes(h.authenticator, view.authenticator)) {
    throw new ForkError(
      `fork in area '${h.area}', epoch ${h.epoch}: '${h.sender}' sealed this message under another commit of the same epoch than the one this device holds`,
    );
  }
  view.checkMayPost?.(sender.organisationId, h.area);
  const [key, nonce] = messageKey(epochSecret, h);
  try {
    return await decryptGcm(key, nonce, h.encoded, envelope.ciphertext);
  } catch {
    throw new DecryptionError("message does not decrypt under this epoch's secret");
  }
}

export const MAX_COUNTER_JUMP = 100_000n;
export const MAX_GAP_RANGES = 1024;
const LISTED_RUN = 3n;
type Run = [bigint, bigint];

/** Remembers, per operation, area and sender, which counters were accepted, as
 * opseal.crypto.envelope.ReplayTracker: a counter seen before raises ReplayError; counters
 * skipped over are kept as runs of possibly missing messages (at most MAX_GAP_RANGES, the
 * oldest forgotten) until they arrive late, once; a jump of more than MAX_COUNTER_JUMP is
 * refused. `gaps` writes a run of up to three counters as the counters, a longer one as
 * [first, last]. */
export class ReplayTracker {
  private readonly logs = new Map<string, { highest: bigint; missing: Run[] }>();

  record(operation: string, area: string, sender: string, counter: bigint): void {
    const k = JSON.stringify([operation, area, sender]);
    let log = this.logs.get(k);
    if (log === undefined) {
      log = { highest: 0n, missing: [] };
      this.logs.set(k, log);
    }
    if (counter - log.highest > MAX_COUNTER_JUMP) {
      throw new EnvelopeError(`counter of '${sender}' jumps by more than ${MAX_COUNTER_JUMP}`);
    }
    if (counter > log.highest) {
      if (counter > log.highest + 1n) log.missing.push([log.highest + 1n, counter - 1n]);
      log.highest = counter;
    } else {
      const i = log.missing.findIndex(([first, last]) => first <= counter && counter <= last);
      if (i < 0) throw new ReplayError(`message ${counter} from '${sender}' in '${area}' was already seen`);
      const [first, last] = log.missing[i]!;
      const pieces = ([[first, counter - 1n], [counter + 1n, last]] as Run[]).filter(([a, b]) => a <= b);
      log.missing.splice(i, 1, ...pieces);
    }
    log.missing.splice(0, Math.max(0, log.missing.length - MAX_GAP_RANGES));
  }

  /** Every log as plain JSON (counters as decimal text), for persisting the tracker. */
  toJSON(): [string, string, [string, string][]][] {
    return [...this.logs].map(([k, log]) => [k, log.highest.toString(), log.missing.map(([a, b]) => [a.toString(), b.toString()] as [string, string])]);
  }

  /** A tracker restored from `toJSON`'s output. */
  static fromJSON(data: [string, string, [string, string][]][]): ReplayTracker {
    const tracker = new ReplayTracker();
    for (const [k, highest, missing] of data) {
      tracker.logs.set(k, { highest: BigInt(highest), missing: missing.map(([a, b]) => [BigInt(a), BigInt(b)] as Run) });
    }
    return tracker;
  }

  gaps(operation: string, area: string, sender: string): (bigint | [bigint, bigint])[] {
    const log = this.logs.get(JSON.stringify([operation, area, sender]));
    const out: (bigint | [bigint, bigint])[] = [];
    for (const [first, last] of log?.missing ?? []) {
      if (last - first < LISTED_RUN) for (let c = first; c <= last; c++) out.push(c);
      else out.push([first, last]);
    }
    return out;
  }
}
