/**
 * Keys, as opseal.crypto.keys: Ed25519 verify (and sign, for objects this side produces),
 * key ids (SHA-256 of the raw public key), the digit fingerprint, HKDF-SHA256.
 *
 * Ed25519 verification is OpenSSL's rule (behind Python's `cryptography`; design §17): S
 * below the group order, A any encoding of a curve point (y taken mod p), the cofactorless equation
 * checked as OpenSSL does: the encoding of [S]B - [k]A must be the signature's R bytes.
 * `verify` computes it with @noble/curves' point arithmetic (noble's own verify is cofactored
 * and refuses small-order keys: another verdict on such edge cases); `verifyAsync` asks
 * WebCrypto (BoringSSL in Chromium, OpenSSL in Node, several times faster), whose verdict is
 * final, and computes it here only where WebCrypto has no Ed25519.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 as nobleSha256, sha512 } from "@noble/hashes/sha2.js";
import { bytesToNumberLE } from "@noble/curves/utils.js";
import { DecodeError, SignatureError } from "./errors.js";
import { concat, equalBytes, sha256 } from "./encoding.js";

/** Six groups of five digits over a digest (each group: 5 bytes big-endian mod 100000). */
export function fingerprintText(digest: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 30; i += 5) {
    let n = 0n;
    for (const byte of digest.slice(i, i + 5)) n = (n << 8n) | BigInt(byte);
    groups.push((n % 100000n).toString().padStart(5, "0"));
  }
  return groups.join(" ");
}

/** HKDF-SHA256 (RFC 5869); an empty salt means 32 zero bytes, as in Python. */
export function hkdfSha256(ikm: Uint8Array, info: Uint8Array, length: number, salt?: Uint8Array): Uint8Array {
  if (length > 255 * 32) throw new RangeError("HKDF output too long");
  return hkdf(nobleSha256, ikm, salt && salt.length ? salt : new Uint8Array(32), info, length);
}

const ORDER = ed25519.Point.Fn.ORDER;

/** RFC 8032 §5.1.7 as OpenSSL (and BoringSSL) verify: canonical S, A decoded as ref10 does,
 * cofactorless, R compared as bytes (so a non-canonical R never matches). */
function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const r = signature.subarray(0, 32);
  const s = bytesToNumberLE(signature.subarray(32));
  if (s >= ORDER) return false;
  let a;
  try {
    a = ed25519.Point.fromBytes(publicKey, true); // as OpenSSL: y reduced mod p, x = 0 with either sign
  } catch {
    return false;
  }
  const k = bytesToNumberLE(sha512(concat(r, publicKey, message))) % ORDER;
  const check = ed25519.Point.BASE.multiplyUnsafe(s).subtract(a.multiplyUnsafe(k));
  return equalBytes(check.toBytes(), r);
}

const subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle;
/** Imported WebCrypto keys per raw key (hex); null: WebCrypto did not take the key. */
const webKeys = new Map<string, Promise<CryptoKey | null>>();
const MAX_WEB_KEYS = 4096;
let webEd25519 = subtle !== undefined;

/** The WebCrypto verification key for `raw`, imported once; null without WebCrypto Ed25519. */
function webKey(raw: Uint8Array): Promise<CryptoKey | null> {
  if (!webEd25519) return Promise.resolve(null);
  const id = toHexKey(raw);
  let key = webKeys.get(id);
  if (key === undefined) {
    if (webKeys.size >= MAX_WEB_KEYS) webKeys.clear();
    key = subtle!.importKey("raw", Uint8Array.from(raw), { name: "Ed25519" }, false, ["verify"]).catch((exc: unknown) => {
      // a browser without Ed25519 in WebCrypto: every key goes to noble from now on
      if (exc instanceof DOMException && exc.name === "NotSupportedError") webEd25519 = false;
      return null;
    });
    webKeys.set(id, key);
  }
  return key;
}

function toHexKey(raw: Uint8Array): string {
  let out = "";
  for (const byte of raw) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** An Ed25519 public key; equal when the raw bytes are equal. */
export class VerifyKey {
  readonly raw: Uint8Array;

  constructor(raw: Uint8Array) {
    if (!(raw instanceof Uint8Array) || raw.length !== 32) {
      throw new DecodeError("Ed25519 public key must be 32 bytes");
    }
    // Like cryptography's from_public_bytes, only the length is checked here: a key that
    // is no curve point fails at verify().
    this.raw = Uint8Array.from(raw);
  }

  equals(other: VerifyKey): boolean {
    return equalBytes(this.raw, other.raw);
  }

  /** SHA-256 of the raw public key: how certificates name their issuer. */
  get keyId(): Uint8Array {
    return sha256(this.raw);
  }

  get fingerprint(): string {
    return fingerprintText(this.keyId);
  }

  /** Throw SignatureError unless `signature` signs `message` under this key. */
  verify(signature: Uint8Array, message: Uint8Array, what = "signature"): void {
    let ok = false;
    try {
      ok = verifyEd25519(signature, message, this.raw);
    } catch {
      ok = false;
    }
    if (!ok) throw new SignatureError(`${what} does not verify`);
  }

  /** As `verify`, through WebCrypto when it has Ed25519: its verdict (BoringSSL's or
   * OpenSSL's, the Python side's rule) is final; without it, `verify` decides. */
  async verifyAsync(signature: Uint8Array, message: Uint8Array, what = "signature"): Promise<void> {
    const key = signature.length === 64 ? await webKey(this.raw) : null;
    if (key === null) return this.verify(signature, message, what);
    let ok = false;
    try {
      ok = await subtle!.verify({ name: "Ed25519" }, key, signature as BufferSource, message as BufferSource);
    } catch {
      ok = false;
    }
    if (!ok) throw new SignatureError(`${what} does not verify`);
  }
}

/** An Ed25519 private key (32-byte seed). */
export class SigningKey {
  readonly verifyKey: VerifyKey;
  readonly #seed: Uint8Array;

  constructor(seed: Uint8Array) {
    if (seed.length !== 32) throw new DecodeError("Ed25519 private key must be 32 bytes");
    this.#seed = Uint8Array.from(seed);
    this.verifyKey = new VerifyKey(ed25519.getPublicKey(this.#seed));
  }

  static generate(): SigningKey {
    return new SigningKey(ed25519.utils.randomSecretKey());
  }

  sign(message: Uint8Array): Uint8Array {
    return ed25519.sign(message, this.#seed);
  }

  /** The 32-byte seed, for sealing into a key file (never log it). */
  privateBytes(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }
}
