/**
 * A `KeyValueStore` on IndexedDB, for the browser: one object store of byte values keyed by
 * text. Values written here are already sealed (`SealedStore`, Argon2id key files), so the
 * browser's storage holds no plaintext, no key in the clear and no epoch secret. Node has no
 * IndexedDB: this is exercised by the web app's browser tests.
 */
import type { KeyValueStore } from "./store.js";

const STORE = "kv";

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

export class IndexedDbStore implements KeyValueStore {
  private constructor(private readonly db: IDBDatabase) {}

  /** Open (or create) the database `name` (one per device profile). */
  static async open(name = "opseal", factory: IDBFactory = globalThis.indexedDB): Promise<IndexedDbStore> {
    const request = factory.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    return new IndexedDbStore(await done(request));
  }

  private tx(mode: IDBTransactionMode): IDBObjectStore {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const value = (await done(this.tx("readonly").get(key))) as Uint8Array | undefined;
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await done(this.tx("readwrite").put(Uint8Array.from(value), key));
  }

  async delete(key: string): Promise<void> {
    await done(this.tx("readwrite").delete(key));
  }

  async keys(prefix = ""): Promise<string[]> {
    const range = prefix ? IDBKeyRange.bound(prefix, `${prefix}\uffff`) : undefined;
    const keys = (await done(this.tx("readonly").getAllKeys(range))) as string[];
    return keys.filter((k) => k.startsWith(prefix)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async clear(): Promise<void> {
    await done(this.tx("readwrite").clear());
  }

  /** Close the database (e.g. before deleting it). */
  close(): void {
    this.db.close();
  }
}
