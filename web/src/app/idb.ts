/**
 * The browser's `KeyValueStore`: one IndexedDB object store. Everything the client core puts
 * here is already sealed (the device keys under the passphrase, the rest under the store key),
 * so the database holds no key, secret or plaintext in the clear; "forget this device" clears
 * it and deletes the database.
 */
import type { KeyValueStore } from "../client/index.js";

const DB = "opseal";
const STORE = "kv";

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

export class IndexedDbStore implements KeyValueStore {
  private constructor(private db: IDBDatabase) {}

  static async open(name = DB): Promise<IndexedDbStore> {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    return new IndexedDbStore(await done(request));
  }

  private store(mode: IDBTransactionMode): IDBObjectStore {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const value: unknown = await done(this.store("readonly").get(key));
    return value instanceof Uint8Array ? value : undefined;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await done(this.store("readwrite").put(Uint8Array.from(value), key));
  }

  async delete(key: string): Promise<void> {
    await done(this.store("readwrite").delete(key));
  }

  async keys(prefix = ""): Promise<string[]> {
    const range = prefix ? IDBKeyRange.bound(prefix, `${prefix}\uffff`) : undefined;
    const keys = await done(this.store("readonly").getAllKeys(range));
    return keys.map(String).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async clear(): Promise<void> {
    await done(this.store("readwrite").clear());
  }

  /** Clear, close and delete the whole database ("forget this device"). */
  async destroy(): Promise<void> {
    await this.clear();
    this.db.close();
    await done(indexedDB.deleteDatabase(DB));
  }
}
