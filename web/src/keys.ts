/**
 * Keys, as opseal.crypto.keys: Ed25519 verify (and sign, for objects this side produces),
 * key ids (SHA-256 of the raw public key), the digit fingerprint, HKDF-SHA256.
 *
 * Ed25519 comes from @noble/curves with `zip215: false`: RFC 8032 strict verification, which
 * refuses non-canonical encodings as OpenSSL (behind Python's `cryptography`) does.
 * `verifyAsync` asks WebCrypto first (BoringSSL in Chromium, OpenSSL in Node: several times
 * faster) and takes noble's strict verdict whenever WebCrypto refuses or has no Ed25519
 * (design §17: why the verdict stays the Python side's).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { DecodeError, SignatureError } from "./errors.js";
import { equalBytes, sha256 } from "./encoding.js";

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
      ok = signature.length === 64 && ed25519.verify(signature, message, this.raw, { zip215: false });
    } catch {
      ok = false;
    }
    if (!ok) throw new SignatureError(`${what} does not verify`);
  }

  /** As `verify`, through WebCrypto when it has Ed25519. WebCrypto's acceptance is final (the
   * cofactorless RFC 8032 check of BoringSSL/OpenSSL, the Python side's rule); a refusal or
   * an error falls back to noble's strict verdict, so nothing noble accepts is refused. */
  async verifyAsync(signature: Uint8Array, message: Uint8Array, what = "signature"): Promise<void> {
    if (signature.length === 64) {
      const key = await webKey(this.raw);
      if (key !== null) {
        try {
          if (await subtle!.verify({ name: "Ed25519" }, key, signature as BufferSource, message as BufferSource)) return;
        } catch {
          // refused below by noble, or accepted there
        }
      }
    }
    this.verify(signature, message, what);
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
