/**
 * Persistence for the verifying client (design §17): a `KeyValueStore` the host provides
 * (IndexedDB in the browser, memory in tests) and `SealedStore`, which seals every value with
 * AES-256-GCM under the device's store key, binding each value to its key name, so a store
 * copied off the machine holds no epoch secret, message or charter in the clear and a value
 * moved to another name does not open. AES-GCM runs in WebCrypto where there is one (the key
 * imported once: noble's would expand the key and rebuild its GHASH table at every value,
 * several times per message a sync takes), in noble elsewhere; both write the same bytes.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { b64d, b64e, compareCodePoints, concat } from "../encoding.js";
import { DecryptionError } from "../errors.js";

/** Where a device keeps its state: byte values under text keys. Every method may be async. */
export interface KeyValueStore {
  /** The value under `key`, or undefined. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Store `value` under `key`, replacing any value. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Remove `key` (nothing happens if it is absent). */
  delete(key: string): Promise<void>;
  /** Every key starting with `prefix` (all keys without one), sorted by code point. */
  keys(prefix?: string): Promise<string[]>;
  /** Remove every key ("forget this device"). */
  clear(): Promise<void>;
}

/** A `KeyValueStore` in memory: for tests and for a session that keeps nothing. */
export class MemoryStore implements KeyValueStore {
  private readonly values = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    const value = this.values.get(key);
    return value === undefined ? undefined : Uint8Array.from(value);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    this.values.set(key, Uint8Array.from(value));
  }

  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }

  async keys(prefix = ""): Promise<string[]> {
    return [...this.values.keys()].filter((k) => k.startsWith(prefix)).sort(compareCodePoints);
  }

  async clear(): Promise<void> {
    this.values.clear();
  }
}

const NONCE = 12;
const subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle;
const CACHED_BYTES = 256;
const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });

/** A view of a `KeyValueStore` whose values are sealed under a 32-byte store key. */
export class SealedStore {
  readonly #key: Uint8Array;
  /** Small values opened or written before (positions, epochs, secrets, states' keys), so a
   * sync does not open the same value once per message. */
  readonly #cache = new Map<string, Uint8Array>();
  #webKey: Promise<CryptoKey | null> | undefined;

  constructor(
    readonly backend: KeyValueStore,
    storeKey: Uint8Array,
    private readonly prefix = "s/",
  ) {
    if (storeKey.length !== 32) throw new DecryptionError("a store key is 32 bytes");
    this.#key = Uint8Array.from(storeKey);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return Uint8Array.from(cached);
    const sealed = await this.backend.get(this.prefix + key);
    if (sealed === undefined) return undefined;
    let value: Uint8Array;
    try {
      value = await this.aead(false, sealed.subarray(0, NONCE), utf8.encode(key), sealed.subarray(NONCE));
    } catch {
      throw new DecryptionError(`the stored value of '${key}' does not open under this device's store key`);
    }
    this.remember(key, value);
    return value;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const nonce = crypto.getRandomValues(new Uint8Array(NONCE));
    this.#cache.delete(key);
    const sealed = await this.aead(true, nonce, utf8.encode(key), value);
    await this.backend.put(this.prefix + key, concat(nonce, sealed));
    this.remember(key, value);
  }

  async delete(key: string): Promise<void> {
    this.#cache.delete(key);
    await this.backend.delete(this.prefix + key);
  }

  /** AES-256-GCM under the store key: WebCrypto's when it takes the key, else noble's. */
  private async aead(encrypt: boolean, nonce: Uint8Array, aad: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
    this.#webKey ??= subtle
      ? subtle.importKey("raw", this.#key as BufferSource, "AES-GCM", false, ["encrypt", "decrypt"]).catch(() => null)
      : Promise.resolve(null);
    const webKey = await this.#webKey;
    if (webKey === null) {
      const cipher = gcm(this.#key, nonce, aad);
      return encrypt ? cipher.encrypt(data) : cipher.decrypt(data);
    }
    const params = { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource };
    const out = encrypt ? subtle!.encrypt(params, webKey, data as BufferSource) : subtle!.decrypt(params, webKey, data as BufferSource);
    return new Uint8Array(await out);
  }

  private remember(key: string, value: Uint8Array): void {
    if (value.length <= CACHED_BYTES) this.#cache.set(key, Uint8Array.from(value));
  }

  /** Keys (without this view's prefix) starting with `prefix`, sorted. */
  async keys(prefix = ""): Promise<string[]> {
    return (await this.backend.keys(this.prefix + prefix)).map((k) => k.slice(this.prefix.length));
  }

  async getJSON<T>(key: string): Promise<T | undefined> {
    const raw = await this.get(key);
    return raw === undefined ? undefined : (JSON.parse(text.decode(raw)) as T);
  }

  async putJSON(key: string, value: unknown): Promise<void> {
    await this.put(key, utf8.encode(JSON.stringify(value)));
  }

  async getText(key: string): Promise<string | undefined> {
    const raw = await this.get(key);
    return raw === undefined ? undefined : text.decode(raw);
  }

  async putText(key: string, value: string): Promise<void> {
    await this.put(key, utf8.encode(value));
  }
}

/** A sequence or epoch number as a fixed-width key part, so keys sort in number order. */
export function padded(n: bigint | number): string {
  return n.toString().padStart(20, "0");
}

export { b64d, b64e };
