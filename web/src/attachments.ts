/**
 * Attachments, as opseal.crypto.attachments (design §6): the STREAM construction over
 * AES-256-GCM. Chunk i is sealed with the nonce `nonce_prefix (7) || i (u32) || final flag (1)`
 * and the stream header `Writer(label("attachment")).u32(chunk_size).blob(nonce_prefix)` as
 * associated data; the stream is the header then every chunk (ciphertext || 16-byte tag). The
 * last chunk is the only one flagged final (an empty file is one empty final chunk), so a
 * dropped, reordered, duplicated or appended chunk fails.
 *
 * AES-GCM is @noble/ciphers' (synchronous; WebCrypto's is asynchronous and can replace it
 * behind the same functions when speed asks). This works on whole buffers: the browser holds
 * the attachment it shows; chunk by chunk, memory stays one chunk above the two buffers.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { AttachmentError, DecodeError, StreamError } from "./errors.js";
import { Reader, Writer, concat, equalBytes, label, sha256, utf8Length } from "./encoding.js";

export const FILE_KEY_SIZE = 32;
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = 16 << 20;
export const DEFAULT_CHUNK_SIZE = 1 << 20;
const NONCE_PREFIX_SIZE = 7;
const TAG_SIZE = 16;
const HASH_SIZE = 32;
const MAX_LABEL = 80;
const HEADER = label("attachment");
const META = label("attachment-meta");
const CONTROL_CHARS = /[\x00-\x1f\x7f-\x9f]/;

function checkText(value: string, name: string, maxLen: number): void {
  if (typeof value !== "string" || utf8Length(value) > maxLen || CONTROL_CHARS.test(value)) {
    throw new AttachmentError(`attachment metadata: ${name} must be at most ${maxLen} bytes without control characters`);
  }
}

/** What a message says about one attachment: enough to fetch, verify and decrypt it. */
export class FileMeta {
  constructor(
    readonly fileKey: Uint8Array,
    readonly ciphertextSha256: Uint8Array,
    readonly plaintextSha256: Uint8Array,
    readonly size: bigint,
    readonly ciphertextSize: bigint,
    readonly mediaType: string,
    readonly fileName: string,
  ) {
    if (fileKey.length !== FILE_KEY_SIZE) throw new AttachmentError(`attachment metadata: file_key must be ${FILE_KEY_SIZE} bytes`);
    for (const [value, name] of [[ciphertextSha256, "ciphertext_sha256"], [plaintextSha256, "plaintext_sha256"]] as const) {
      if (value.length !== HASH_SIZE) throw new AttachmentError(`attachment metadata: ${name} must be ${HASH_SIZE} bytes`);
    }
    checkText(mediaType, "media_type", 255);
    checkText(fileName, "file_name", 1024);
  }

  toBytes(): Uint8Array {
    return new Writer(META)
      .blob(this.fileKey).blob(this.ciphertextSha256).blob(this.plaintextSha256)
      .u64(this.size).u64(this.ciphertextSize).text(this.mediaType).text(this.fileName)
      .finish();
  }

  static fromBytes(data: Uint8Array): FileMeta {
    const r = new Reader(data, META, "attachment metadata");
    const meta = new FileMeta(
      r.blob({ exact: FILE_KEY_SIZE, field: "file_key" }),
      r.blob({ exact: HASH_SIZE, field: "ciphertext_sha256" }),
      r.blob({ exact: HASH_SIZE, field: "plaintext_sha256" }),
      r.u64("size"),
      r.u64("ciphertext_size"),
      r.text({ maxLen: 255, field: "media_type" }),
      r.text({ maxLen: 1024, field: "file_name" }),
    );
    r.finish();
    return meta;
  }
}

function nonce(prefix: Uint8Array, index: number, final: boolean): Uint8Array {
  if (index >= 2 ** 32) throw new StreamError("attachment stream has more than 2**32 chunks");
  const out = new Uint8Array(12);
  out.set(prefix);
  new DataView(out.buffer).setUint32(7, index);
  out[11] = final ? 1 : 0;
  return out;
}

function checkKey(fileKey: Uint8Array): void {
  if (!(fileKey instanceof Uint8Array) || fileKey.length !== FILE_KEY_SIZE) {
    throw new AttachmentError(`attachment file key must be ${FILE_KEY_SIZE} bytes`);
  }
}

/** The STREAM ciphertext of `plaintext` (header first). */
export function encryptStream(
  plaintext: Uint8Array,
  fileKey: Uint8Array,
  noncePrefix: Uint8Array,
  chunkSize = DEFAULT_CHUNK_SIZE,
): Uint8Array {
  checkKey(fileKey);
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new AttachmentError(`attachment chunk size must be between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE} bytes`);
  }
  if (noncePrefix.length !== NONCE_PREFIX_SIZE) {
    throw new AttachmentError(`attachment nonce prefix must be ${NONCE_PREFIX_SIZE} bytes`);
  }
  const header = new Writer(HEADER).u32(chunkSize).blob(noncePrefix).finish();
  const parts = [header];
  let index = 0;
  let pos = 0;
  // as Python's chunker: a full chunk is sealed as a middle one only when more data follows
  while (plaintext.length - pos > chunkSize) {
    parts.push(gcm(fileKey, nonce(noncePrefix, index++, false), header).encrypt(plaintext.subarray(pos, pos + chunkSize)));
    pos += chunkSize;
  }
  parts.push(gcm(fileKey, nonce(noncePrefix, index, true), header).encrypt(plaintext.subarray(pos)));
  return concat(...parts);
}

/** The plaintext of a STREAM ciphertext; StreamError if it was truncated, extended, reordered
 * or tampered with, DecodeError for a malformed header. No hash is checked here. */
export function decryptStream(stream: Uint8Array, fileKey: Uint8Array): Uint8Array {
  checkKey(fileKey);
  if (stream.length < 4) throw new StreamError("attachment stream truncated: incomplete header");
  const labelLen = new DataView(stream.buffer, stream.byteOffset, 4).getUint32(0);
  if (labelLen > MAX_LABEL) throw new DecodeError("attachment header: label too long");
  const headerLen = 4 + labelLen + 4 + 4 + NONCE_PREFIX_SIZE;
  if (stream.length < headerLen) throw new StreamError("attachment stream truncated: incomplete header");
  const header = stream.slice(0, headerLen);
  const r = new Reader(header, HEADER, "attachment header");
  const chunkSize = r.u32("chunk_size");
  const prefix = r.blob({ exact: NONCE_PREFIX_SIZE, field: "nonce_prefix" });
  r.finish();
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) throw new DecodeError("attachment header: chunk size out of range");
  const sealed = chunkSize + TAG_SIZE;
  const open = (chunk: Uint8Array, index: number, final: boolean): Uint8Array | null => {
    try {
      return gcm(fileKey, nonce(prefix, index, final), header).decrypt(chunk);
    } catch {
      return null;
    }
  };
  const parts: Uint8Array[] = [];
  let pos = headerLen;
  let index = 0;
  while (stream.length - pos > sealed) {
    const chunk = stream.subarray(pos, pos + sealed);
    const plain = open(chunk, index, false);
    if (plain === null) {
      throw new StreamError(
        open(chunk, index, true) !== null
          ? "attachment stream extended: data follows the final chunk"
          : `attachment chunk ${index} failed authentication (tampered, reordered, truncated or wrong key)`,
      );
    }
    parts.push(plain);
    pos += sealed;
    index++;
  }
  const last = stream.subarray(pos);
  if (last.length < TAG_SIZE) throw new StreamError("attachment stream truncated: no final chunk");
  const plain = open(last, index, true);
  if (plain === null) {
    throw new StreamError(
      open(last, index, false) !== null
        ? "attachment stream truncated: no final chunk"
        : `attachment chunk ${index} failed authentication (tampered, reordered, truncated or wrong key)`,
    );
  }
  parts.push(plain);
  return concat(...parts);
}

/** Encrypt `plaintext` under `fileKey` and describe it (random key and prefix by default). */
export function encryptAttachment(
  plaintext: Uint8Array,
  o: { mediaType: string; fileName: string; chunkSize?: number; fileKey?: Uint8Array; noncePrefix?: Uint8Array },
): { ciphertext: Uint8Array; meta: FileMeta } {
  checkText(o.mediaType, "media_type", 255);
  checkText(o.fileName, "file_name", 1024);
  const fileKey = o.fileKey ?? crypto.getRandomValues(new Uint8Array(FILE_KEY_SIZE));
  const prefix = o.noncePrefix ?? crypto.getRandomValues(new Uint8Array(NONCE_PREFIX_SIZE));
  const ciphertext = encryptStream(plaintext, fileKey, prefix, o.chunkSize);
  const meta = new FileMeta(
    fileKey, sha256(ciphertext), sha256(plaintext), BigInt(plaintext.length), BigInt(ciphertext.length),
    o.mediaType, o.fileName,
  );
  return { ciphertext, meta };
}

/** Decrypt an attachment after checking its ciphertext size and SHA-256 against `meta`
 * (nothing is decrypted if they differ); the plaintext size and SHA-256 are checked too. */
export function decryptAttachment(ciphertext: Uint8Array, meta: FileMeta): Uint8Array {
  if (BigInt(ciphertext.length) > meta.ciphertextSize) throw new AttachmentError("attachment ciphertext is longer than its metadata says");
  if (BigInt(ciphertext.length) < meta.ciphertextSize) throw new AttachmentError("attachment ciphertext is shorter than its metadata says");
  if (!equalBytes(sha256(ciphertext), meta.ciphertextSha256)) {
    throw new AttachmentError("attachment ciphertext SHA-256 differs from its metadata");
  }
  const plaintext = decryptStream(ciphertext, meta.fileKey);
  if (BigInt(plaintext.length) !== meta.size) throw new AttachmentError("attachment plaintext size differs from its metadata");
  if (!equalBytes(sha256(plaintext), meta.plaintextSha256)) {
    throw new AttachmentError("attachment plaintext SHA-256 differs from its metadata");
  }
  return plaintext;
}
