/**
 * HPKE (RFC 9180, base mode, single shot) with the suite of design §3, as `cryptography`'s
 * `Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)` behind opseal.crypto.keys.
 *
 * The KEM is X-Wing (draft-connolly-cfrg-xwing-kem; HPKE KEM id 0x647a): ML-KEM-768 and
 * X25519 combined as SHA3-256(ss_M || ss_X || ct_X || pk_X || "\.//^\"). A public key is the
 * 1,184-byte ML-KEM key then the 32-byte X25519 key (1,216 bytes); an encapsulation is the
 * 1,088-byte ML-KEM ciphertext then the 32-byte X25519 share (1,120 bytes). OpSeal's private
 * key is not X-Wing's 32-byte seed but the 64-byte ML-KEM seed followed by the X25519 scalar,
 * so the KEM is noble's `combineKEMS` over `ml_kem768` and X25519 with the identity as seed
 * expansion and X-Wing's combiner. The key schedule is RFC 9180 §5.1 on @noble/hashes' HKDF
 * extract and expand; AES-256-GCM is @noble/ciphers'. Every piece is a library primitive.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { sha3_256 } from "@noble/hashes/sha3.js";
import { _ecdhKem, combineKEMS } from "@noble/post-quantum/hybrid.js";
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js";
import { DecodeError, DecryptionError } from "./errors.js";
import { concat, sha256 as digest } from "./encoding.js";

export const HPKE_PUBLIC_KEY_SIZE = 1216;
export const HPKE_PRIVATE_KEY_SIZE = 96;
export const ENC_SIZE = 1120;
export const KEM_ID = 0x647a;
const KDF_ID = 0x0001;
const AEAD_ID = 0x0002;
const ascii = new TextEncoder();
const XWING_LABEL = ascii.encode("\\.//^\\");
const SUITE_ID = concat(ascii.encode("HPKE"), Uint8Array.of(KEM_ID >> 8, KEM_ID & 0xff, 0, KDF_ID, 0, AEAD_ID));
const VERSION = ascii.encode("HPKE-v1");
const EMPTY = new Uint8Array(0);

const kem = combineKEMS(
  HPKE_PRIVATE_KEY_SIZE,
  32,
  (seed: Uint8Array) => seed,
  (pk: Uint8Array[], ct: Uint8Array[], ss: Uint8Array[]) => sha3_256(concat(ss[0]!, ss[1]!, ct[1]!, pk[1]!, XWING_LABEL)),
  ml_kem768,
  _ecdhKem(x25519),
);

function labeledExtract(salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return extract(sha256, concat(VERSION, SUITE_ID, ascii.encode(label), ikm), salt);
}

function labeledExpand(prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  const head = Uint8Array.of(length >> 8, length & 0xff);
  return expand(sha256, prk, concat(head, VERSION, SUITE_ID, ascii.encode(label), info), length);
}

/** RFC 9180 §5.1 KeySchedule in base mode: the AEAD key and base nonce. */
function keySchedule(sharedSecret: Uint8Array, info: Uint8Array): [Uint8Array, Uint8Array] {
  const context = concat(
    Uint8Array.of(0),
    labeledExtract(EMPTY, "psk_id_hash", EMPTY),
    labeledExtract(EMPTY, "info_hash", info),
  );
  const secret = labeledExtract(sharedSecret, "secret", EMPTY);
  return [labeledExpand(secret, "key", context, 32), labeledExpand(secret, "base_nonce", context, 12)];
}

/** A hybrid ML-KEM-768 + X25519 HPKE public key. */
export class HpkePublicKey {
  readonly raw: Uint8Array;

  constructor(raw: Uint8Array) {
    if (!(raw instanceof Uint8Array) || raw.length !== HPKE_PUBLIC_KEY_SIZE) {
      throw new DecodeError(`HPKE public key must be ${HPKE_PUBLIC_KEY_SIZE} bytes`);
    }
    this.raw = Uint8Array.from(raw);
  }

  get keyId(): Uint8Array {
    return digest(this.raw);
  }

  /** HPKE base-mode single-shot encryption: enc || ciphertext; `info` binds the context. */
  seal(plaintext: Uint8Array, info: Uint8Array): Uint8Array {
    let encapsulated: { sharedSecret: Uint8Array; cipherText: Uint8Array };
    try {
      encapsulated = kem.encapsulate(this.raw);
    } catch {
      throw new DecodeError("invalid HPKE public key");
    }
    const [key, nonce] = keySchedule(encapsulated.sharedSecret, info);
    return concat(encapsulated.cipherText, gcm(key, nonce).encrypt(plaintext));
  }
}

/** A hybrid ML-KEM-768 + X25519 HPKE private key: the ML-KEM seed then the X25519 scalar. */
export class HpkePrivateKey {
  readonly #raw: Uint8Array;
  readonly publicKey: HpkePublicKey;

  constructor(raw: Uint8Array) {
    if (raw.length !== HPKE_PRIVATE_KEY_SIZE) {
      throw new DecodeError(`HPKE private key must be ${HPKE_PRIVATE_KEY_SIZE} bytes`);
    }
    this.#raw = Uint8Array.from(raw);
    this.publicKey = new HpkePublicKey(kem.getPublicKey(this.#raw));
  }

  /** The 96-byte private key (ML-KEM seed, X25519 scalar), for sealing into a key file. */
  privateBytes(): Uint8Array {
    return Uint8Array.from(this.#raw);
  }

  static generate(): HpkePrivateKey {
    return new HpkePrivateKey(crypto.getRandomValues(new Uint8Array(HPKE_PRIVATE_KEY_SIZE)));
  }

  /** Open an HPKE ciphertext; DecryptionError if it was not sealed to this key and `info`. */
  open(ciphertext: Uint8Array, info: Uint8Array): Uint8Array {
    if (ciphertext.length < ENC_SIZE + 16) throw new DecryptionError("HPKE ciphertext does not open with this key");
    try {
      const shared = kem.decapsulate(ciphertext.subarray(0, ENC_SIZE), this.#raw);
      const [key, nonce] = keySchedule(shared, info);
      return gcm(key, nonce).decrypt(ciphertext.subarray(ENC_SIZE));
    } catch {
      throw new DecryptionError("HPKE ciphertext does not open with this key");
    }
  }
}
