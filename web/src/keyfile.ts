/**
 * Key files sealed under a passphrase, as opseal.crypto.keys.seal_key_file / open_key_file:
 * Argon2id (salt and cost in the file) derives an AES-256-GCM key; the head
 * `opseal/v1/keyfile, purpose, t, m, p, salt(16), nonce(12)` is the associated data.
 *
 * Argon2id is @noble/hashes' (pure JavaScript, the async variant so a page stays responsive);
 * a WASM implementation can replace it behind the same functions if the browser's unlock
 * time at the default 64 MiB asks for it.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { argon2idAsync } from "@noble/hashes/argon2.js";
import { DecodeError, WrongPassphrase } from "./errors.js";
import { Reader, Writer, concat, label, lengthPrefixed } from "./encoding.js";

const KEYFILE = label("keyfile");

export interface KdfParams {
  timeCost: number;
  memoryKib: number;
  parallelism: number;
}

export const DEFAULT_KDF: KdfParams = { timeCost: 3, memoryKib: 64 * 1024, parallelism: 1 };

function check(p: KdfParams): void {
  if (!(p.parallelism >= 1 && p.parallelism <= 16)) throw new DecodeError("key file: Argon2id parallelism out of range");
  if (!(p.timeCost >= 1 && p.timeCost <= 64 && 8 * p.parallelism <= p.memoryKib && p.memoryKib <= 1 << 20)) {
    throw new DecodeError("key file: Argon2id parameters out of range");
  }
}

function derive(passphrase: string, salt: Uint8Array, p: KdfParams): Promise<Uint8Array> {
  return argon2idAsync(new TextEncoder().encode(passphrase), salt, { t: p.timeCost, m: p.memoryKib, p: p.parallelism, dkLen: 32 });
}

/** Seal private key bytes under a passphrase; `purpose` (e.g. `device`) is bound in. */
export async function sealKeyFile(secret: Uint8Array, passphrase: string, purpose: string, params: KdfParams = DEFAULT_KDF): Promise<Uint8Array> {
  if (!passphrase) throw new Error("a passphrase is required");
  check(params);
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const head = new Writer(KEYFILE).text(purpose).u32(params.timeCost).u32(params.memoryKib).u32(params.parallelism)
    .blob(salt).blob(nonce).finish();
  const sealed = gcm(await derive(passphrase, salt, params), nonce, head).encrypt(secret);
  return concat(head, lengthPrefixed(sealed));
}

/** Open a key file; WrongPassphrase if the passphrase (or the file) does not open it. */
export async function openKeyFile(blob: Uint8Array, passphrase: string, purpose: string): Promise<Uint8Array> {
  const r = new Reader(blob, KEYFILE, "key file");
  const found = r.text({ maxLen: 64, field: "purpose" });
  const params = { timeCost: r.u32("time_cost"), memoryKib: r.u32("memory_kib"), parallelism: r.u32("parallelism") };
  const salt = r.blob({ exact: 16, field: "salt" });
  const nonce = r.blob({ exact: 12, field: "nonce" });
  const head = r.consumed();
  const sealed = r.blob({ maxLen: 4096, field: "sealed" });
  r.finish();
  if (found !== purpose) throw new DecodeError(`key file holds a '${found}' key, expected '${purpose}'`);
  check(params);
  const key = await derive(passphrase, salt, params);
  try {
    return gcm(key, nonce, head).decrypt(sealed);
  } catch {
    throw new WrongPassphrase("the passphrase does not open this key file");
  }
}
