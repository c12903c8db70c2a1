/**
 * The explicit binary encoding of everything OpSeal signs (design §5), byte for byte as
 * opseal.crypto.encoding writes it: a length-prefixed purpose label `opseal/v1/<name>`, then
 * fields in a fixed order — byte strings and text as a 4-byte big-endian length and the bytes,
 * integers fixed-width big-endian, lists as a 4-byte count and their items.
 *
 * The Reader is as strict as the Python one: every length is bounded, booleans are 0 or 1,
 * text is UTF-8 (fatal decoding), trailing bytes are refused, and a label of another protocol
 * version raises UnsupportedVersion. u64 values are bigint so no value above 2^53 is rounded.
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { DecodeError, UnsupportedVersion } from "./errors.js";

export const PROTOCOL_VERSION = "v1";
export const MAX_BYTES = 64 * 1024 * 1024;
const MAX_LIST = 1_000_000;
const LABEL_RE = /^opseal\/(v[0-9]+)\/[a-z0-9][a-z0-9/-]{0,62}$/;
const U64_MAX = (1n << 64n) - 1n;
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The purpose label `opseal/v1/<name>`. */
export function label(name: string): Uint8Array {
  const text = `opseal/${PROTOCOL_VERSION}/${name}`;
  if (!LABEL_RE.test(text)) throw new Error(`invalid label name ${JSON.stringify(name)}`);
  return utf8.encode(text);
}

/** SHA-256 over the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = nobleSha256.create();
  for (const part of parts) h.update(part);
  return h.digest();
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/** One field as the encoding writes it: a 4-byte big-endian length, then the bytes. */
export function lengthPrefixed(value: Uint8Array): Uint8Array {
  return concat(u32(value.length), value);
}

/** Unpadded base64url text of `data`. */
export function b64e(data: Uint8Array): string {
  let binary = "";
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of unpadded, canonical base64url text; a DecodeError naming `field` if not. */
export function b64d(text: string, field = "value", maxLen = MAX_BYTES): Uint8Array {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new DecodeError(`${field}: expected unpadded base64url text`);
  }
  if (text.length % 4 === 1 || text.length > Math.floor((maxLen * 4 + 2) / 3)) {
    throw new DecodeError(`${field}: base64url text has an impossible length`);
  }
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const data = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (b64e(data) !== text) throw new DecodeError(`${field}: non-canonical base64url`);
  return data;
}

/** Builds one encoding: the label first, then fields in the order they are written. */
export class Writer {
  private readonly parts: Uint8Array[] = [];

  constructor(purpose: Uint8Array) {
    this.blob(purpose);
  }

  blob(value: Uint8Array): this {
    if (value.length > MAX_BYTES) throw new Error("field too long to encode");
    this.parts.push(u32(value.length), Uint8Array.from(value));
    return this;
  }

  text(value: string): this {
    return this.blob(utf8.encode(value));
  }

  private int(bytes: number, value: number | bigint): this {
    const v = BigInt(value);
    if (v < 0n || v >= 1n << BigInt(8 * bytes)) throw new RangeError(`u${8 * bytes} out of range`);
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, v << BigInt(64 - 8 * bytes), false);
    this.parts.push(bytes === 8 ? out : out.slice(0, bytes));
    return this;
  }

  u8(value: number): this {
    return this.int(1, value);
  }
  u16(value: number): this {
    return this.int(2, value);
  }
  u32(value: number): this {
    return this.int(4, value);
  }
  u64(value: number | bigint): this {
    return this.int(8, value);
  }
  bool(value: boolean): this {
    return this.u8(value ? 1 : 0);
  }

  optionalBytes(value: Uint8Array | null): this {
    this.bool(value !== null);
    if (value !== null) this.blob(value);
    return this;
  }

  list<T>(items: Iterable<T>, write: (w: Writer, item: T) => unknown): this {
    const all = [...items];
    this.u32(all.length);
    for (const item of all) write(this, item);
    return this;
  }

  /** A string-to-string map in sorted key order (UTF-16 order equals Python's for BMP keys). */
  textMap(mapping: ReadonlyMap<string, string>): this {
    const keys = [...mapping.keys()].sort(compareCodePoints);
    return this.list(keys, (w, k) => w.text(k).text(mapping.get(k)!));
  }

  finish(): Uint8Array {
    return concat(...this.parts);
  }
}

/** Python's str ordering: by code point (JS's default sort is by UTF-16 unit). */
export function compareCodePoints(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** Whether `items` is sorted by code point with no repeats (what Python checks as sorted(set())). */
export function sortedUnique(items: readonly string[]): boolean {
  for (let i = 1; i < items.length; i++) {
    if (compareCodePoints(items[i - 1]!, items[i]!) >= 0) return false;
  }
  return true;
}

interface BlobOptions {
  maxLen?: number;
  exact?: number;
  field?: string;
}

/** Reads one encoding strictly; every failure raises DecodeError. */
export class Reader {
  private pos = 0;
  private readonly data: Uint8Array;
  private readonly what: string;

  constructor(data: Uint8Array, purpose: Uint8Array, what = "") {
    if (!(data instanceof Uint8Array)) throw new DecodeError("expected bytes");
    this.data = data;
    this.what = what || new TextDecoder().decode(purpose);
    const found = this.blob({ maxLen: 80, field: "label" });
    if (!equalBytes(found, purpose)) {
      const match = LABEL_RE.exec(new TextDecoder("latin1").decode(found));
      const wanted = LABEL_RE.exec(new TextDecoder().decode(purpose));
      if (match && wanted && match[1] !== wanted[1]) {
        throw new UnsupportedVersion(`${this.what}: protocol version ${match[1]} is not supported`);
      }
      throw new DecodeError(`${this.what}: unexpected label`);
    }
  }

  private take(n: number, field: string): Uint8Array {
    const end = this.pos + n;
    if (end > this.data.length) throw new DecodeError(`${this.what}: truncated at field '${field}'`);
    const chunk = this.data.slice(this.pos, end);
    this.pos = end;
    return chunk;
  }

  private view(n: number, field: string): DataView {
    const bytes = this.take(n, field);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  blob({ maxLen = MAX_BYTES, exact, field = "bytes" }: BlobOptions = {}): Uint8Array {
    const n = this.view(4, field).getUint32(0);
    if (exact !== undefined && n !== exact) {
      throw new DecodeError(`${this.what}: field '${field}' must be ${exact} bytes, got ${n}`);
    }
    if (n > maxLen) throw new DecodeError(`${this.what}: field '${field}' longer than ${maxLen} bytes`);
    return this.take(n, field);
  }

  text({ maxLen = 4096, field = "text" }: { maxLen?: number; field?: string } = {}): string {
    const raw = this.blob({ maxLen, field });
    try {
      return strictUtf8.decode(raw);
    } catch {
      throw new DecodeError(`${this.what}: field '${field}' is not UTF-8`);
    }
  }

  u8(field = "u8"): number {
    return this.view(1, field).getUint8(0);
  }
  u16(field = "u16"): number {
    return this.view(2, field).getUint16(0);
  }
  u32(field = "u32"): number {
    return this.view(4, field).getUint32(0);
  }
  u64(field = "u64"): bigint {
    return this.view(8, field).getBigUint64(0);
  }

  bool(field = "bool"): boolean {
    const value = this.u8(field);
    if (value > 1) throw new DecodeError(`${this.what}: field '${field}' must be 0 or 1`);
    return value === 1;
  }

  optionalBytes(opts: BlobOptions = {}): Uint8Array | null {
    return this.bool(opts.field ?? "bytes") ? this.blob(opts) : null;
  }

  list<T>(read: (r: Reader) => T, { maxCount = MAX_LIST, field = "list" } = {}): T[] {
    const count = this.u32(field);
    if (count > maxCount) {
      throw new DecodeError(`${this.what}: field '${field}' has more than ${maxCount} items`);
    }
    const out: T[] = [];
    for (let i = 0; i < count; i++) out.push(read(this));
    return out;
  }

  textMap({ maxCount = 64, field = "map" } = {}): Map<string, string> {
    const pairs = this.list(
      (r) => [r.text({ maxLen: 256, field }), r.text({ maxLen: 4096, field })] as const,
      { maxCount, field },
    );
    if (!sortedUnique(pairs.map(([k]) => k))) {
      throw new DecodeError(`${this.what}: field '${field}' keys must be sorted and unique`);
    }
    return new Map(pairs);
  }

  /** The bytes read so far: what a trailing signature covers. */
  consumed(): Uint8Array {
    return this.data.slice(0, this.pos);
  }

  finish(): void {
    if (this.pos !== this.data.length) {
      throw new DecodeError(`${this.what}: ${this.data.length - this.pos} trailing bytes`);
    }
  }
}

/** Decode `data` with `read`, refusing a wrong label and any trailing bytes. */
export function decodeAll<T>(data: Uint8Array, purpose: Uint8Array, what: string, read: (r: Reader) => T): T {
  const reader = new Reader(data, purpose, what);
  const value = read(reader);
  reader.finish();
  return value;
}

export function checkU64(value: bigint, name: string): void {
  if (value < 0n || value > U64_MAX) throw new RangeError(`${name} must be from 0 to 2**64-1`);
}

/** Python's str.isprintable(): no character of the Unicode categories C* or Z* except space. */
export function isPrintable(value: string): boolean {
  return /^(?:[^\p{C}\p{Z}]| )*$/u.test(value);
}

export function utf8Length(value: string): number {
  return utf8.encode(value).length;
}

export function hex(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new DecodeError("expected lowercase hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
