/**
 * Content payloads (design §5, §8), as Python's `client/content.py`: the plaintext JSON of
 * each content type, written as Python writes it (`json.dumps(payload, sort_keys=True)`),
 * and the deterministic message id of a seizure record (uuid5 over the operation, the
 * sending organisation and the record id), so a record the browser posts is the same
 * submission a re-run of the CLI would make.
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { b64d, b64e, concat, fromHex } from "../encoding.js";
import { FileMeta } from "../attachments.js";
import { ClientError } from "./api.js";

/** A payload without the shape its content type needs; `field` names where. */
export class ContentError extends ClientError {
  override name = "ContentError";
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export const SEIZURE_NAMESPACE = "5b0d3c6e-6f70-5365-616c-2f7365697a65";
export const TRANSPORT_MODES = ["postal", "express", "air-cargo", "sea-cargo", "road", "rail", "passenger"] as const;
export const CATEGORIES = [
  "ipr", "medicines", "medical-devices", "other-counterfeit", "drugs", "precursors", "hazardous", "other",
] as const;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `JSON` written as Python's `json.dumps(value, sort_keys=True)`: keys sorted by code
 * point, `", "` and `": "` separators, non-ASCII escaped. */
export function pythonJson(value: Json): string {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ContentError("value", "numbers must be finite");
    return JSON.stringify(value);
  }
  if (typeof value === "string") return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${keys.map((k) => `${pythonJson(k)}: ${pythonJson(value[k]!)}`).join(", ")}}`;
}

/** RFC 4122 version 5 UUID of `name` in `namespace` (as Python's `uuid.uuid5`). */
export function uuid5(namespace: string, name: string): string {
  const digest = sha1(concat(fromHex(namespace.replace(/-/g, "")), new TextEncoder().encode(name))).slice(0, 16);
  digest[6] = (digest[6]! & 0x0f) | 0x50;
  digest[8] = (digest[8]! & 0x3f) | 0x80;
  const h = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The message id of a seizure record (Python's `record_message_id`). */
export function recordMessageId(op: string, org: string, recordId: string): string {
  return uuid5(SEIZURE_NAMESPACE, pythonJson(["seizure", op, org, recordId]));
}

/** What a message says about one attachment: `{"blob_id", ...FileMeta}`. */
export interface AttachmentRef {
  blob_id: string;
  file_key: string;
  ciphertext_sha256: string;
  plaintext_sha256: string;
  size: number;
  ciphertext_size: number;
  media_type: string;
  file_name: string;
}

const REF_FIELDS: Record<keyof AttachmentRef, "string" | "number"> = {
  blob_id: "string", file_key: "string", ciphertext_sha256: "string", plaintext_sha256: "string",
  size: "number", ciphertext_size: "number", media_type: "string", file_name: "string",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Parse an attachment reference strictly: exactly its fields, each of its type. */
export function parseAttachment(value: unknown): { ref: AttachmentRef; meta: FileMeta } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ClientError("attachment: expected an object");
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  if (keys.join() !== Object.keys(REF_FIELDS).sort().join()) {
    throw new ClientError(`attachment: expected exactly the keys ${Object.keys(REF_FIELDS).join(", ")}`);
  }
  for (const [name, kind] of Object.entries(REF_FIELDS)) {
    if (typeof obj[name] !== kind || (kind === "number" && !Number.isSafeInteger(obj[name]))) {
      throw new ClientError(`attachment: ${name} must be ${kind === "number" ? "an integer" : "text"}`);
    }
  }
  const ref = obj as unknown as AttachmentRef;
  if (!UUID.test(ref.blob_id)) throw new ClientError("attachment: blob_id must be a UUID");
  const meta = new FileMeta(
    b64d(ref.file_key, "file_key", 32), b64d(ref.ciphertext_sha256, "ciphertext_sha256", 32),
    b64d(ref.plaintext_sha256, "plaintext_sha256", 32), BigInt(ref.size), BigInt(ref.ciphertext_size),
    ref.media_type, ref.file_name,
  );
  return { ref, meta };
}

/** The reference to put into a message for an uploaded blob. */
export function attachmentRef(blobId: string, meta: FileMeta): AttachmentRef {
  return {
    blob_id: blobId, file_key: b64e(meta.fileKey), ciphertext_sha256: b64e(meta.ciphertextSha256),
    plaintext_sha256: b64e(meta.plaintextSha256), size: Number(meta.size), ciphertext_size: Number(meta.ciphertextSize),
    media_type: meta.mediaType, file_name: meta.fileName,
  };
}

function str(value: unknown, field: string, maxLen = 256): string {
  if (typeof value !== "string") throw new ContentError(field, `expected text, got ${value === null ? "null" : typeof value}`);
  if (!value.trim()) throw new ContentError(field, "required, and must not be blank");
  if (value.length > maxLen) throw new ContentError(field, `at most ${maxLen} characters`);
  return value;
}

/** `value` if it is a real calendar date written YYYY-MM-DD. */
export function parseDate(value: unknown, field: string): string {
  if (typeof value !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    throw new ContentError(field, `expected a date as YYYY-MM-DD, got ${JSON.stringify(value)}`);
  }
  const d = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== value) throw new ContentError(field, `'${value}' is not a calendar date`);
  return value;
}

/** A `text` payload (Markdown). */
export function text(markdown: string): { text: string } {
  return { text: str(markdown, "text", 1_000_000) };
}

/** An `alert-response` payload. */
export function alertResponse(alertId: string, outcome: string): { alert_id: string; outcome: string } {
  if (!UUID.test(alertId)) throw new ContentError("alert_id", `expected a message id (UUID), got '${alertId}'`);
  return { alert_id: alertId, outcome: str(outcome, "outcome", 1_000_000) };
}

/** A seizure record: the required fields of `seizure-record.v1` checked here (the server
 * cannot read it; every reader checks the whole schema). */
export function seizure(record: Record<string, Json>): Record<string, Json> {
  str(record["record_id"], "record_id");
  str(record["case_ref"], "case_ref");
  const country = str(record["reporting_country"], "reporting_country");
  if (!/^[A-Z]{2}$/.test(country)) throw new ContentError("reporting_country", "expected an ISO 3166 alpha-2 code such as FR");
  parseDate(record["seizure_date"], "seizure_date");
  const mode = str(record["transport_mode"], "transport_mode");
  if (!(TRANSPORT_MODES as readonly string[]).includes(mode)) throw new ContentError("transport_mode", `expected one of ${TRANSPORT_MODES.join(", ")}`);
  if (typeof record["ecommerce"] !== "boolean") throw new ContentError("ecommerce", "expected true or false");
  const goods = record["goods"];
  if (!Array.isArray(goods) || goods.length < 1) throw new ContentError("goods", "expected at least 1 item(s)");
  goods.forEach((line, n) => {
    if (typeof line !== "object" || line === null || Array.isArray(line)) throw new ContentError(`goods[${n}]`, "expected an object");
    const category = str(line["category"], `goods[${n}].category`);
    if (!(CATEGORIES as readonly string[]).includes(category)) throw new ContentError(`goods[${n}].category`, `expected one of ${CATEGORIES.join(", ")}`);
  });
  if (record["attachments"] !== undefined) {
    if (!Array.isArray(record["attachments"])) throw new ContentError("attachments", "expected a list");
    record["attachments"].forEach((a, n) => {
      try {
        parseAttachment(a);
      } catch (exc) {
        throw new ContentError(`attachments[${n}]`, (exc as Error).message);
      }
    });
  }
  return record;
}

/** The plaintext bytes of a payload, as the Python client writes them. */
export function encodePayload(payload: Json): Uint8Array {
  return new TextEncoder().encode(pythonJson(payload));
}
