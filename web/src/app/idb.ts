/**
 * The browser's `KeyValueStore`: one IndexedDB object store, mirrored in memory. Everything
 * the client core puts here is already sealed (the device keys under the passphrase, the rest
 * under the store key), so the database holds no key, secret or plaintext in the clear.
 *
 * Reads come from the mirror (loaded at open). Writes update the mirror at once and reach
 * IndexedDB write-behind: every write of one tick goes into one transaction, committed
 * atomically, so the database always holds the state at the end of some tick — never half of
 * one — and a crash loses at most the last tick (the sync cursor goes back with the entries
 * it covered, which the next sync fetches and verifies again). Opening 1,000 messages makes
 * some ten thousand reads and writes: one IndexedDB transaction each took seconds.
 * "Forget this device" clears it and deletes the database.
 */
import { compareCodePoints } from "../encoding.js";
import type { KeyValueStore } from "../client/index.js";

const DB = "opseal";
const STORE = "kv";

function done<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
  });
}

export class IndexedDbStore implements KeyValueStore {
  private readonly pending = new Map<string, Uint8Array | null>();
  private scheduled: Promise<void> | undefined;
  /** The last write-behind failure, reported by the next `flush`. */
  private failure: unknown;

  private constructor(
    private readonly db: IDBDatabase,
    private readonly mirror: Map<string, Uint8Array>,
  ) {}

  static async open(name = DB): Promise<IndexedDbStore> {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    const db = await done(request);
    const store = db.transaction(STORE, "readonly").objectStore(STORE);
    const [keys, values] = await Promise.all([done(store.getAllKeys()), done(store.getAll())]);
    const mirror = new Map<string, Uint8Array>();
    keys.forEach((key, i) => {
      const value: unknown = values[i];
      if (value instanceof Uint8Array) mirror.set(String(key), value);
    });
    return new IndexedDbStore(db, mirror);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const value = this.mirror.get(key);
    return value === undefined ? undefined : Uint8Array.from(value);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const copy = Uint8Array.from(value);
    this.mirror.set(key, copy);
    this.write(key, copy);
  }

  async delete(key: string): Promise<void> {
    this.mirror.delete(key);
    this.write(key, null);
  }

  async keys(prefix = ""): Promise<string[]> {
    return [...this.mirror.keys()].filter((k) => k.startsWith(prefix)).sort(compareCodePoints);
  }

  async clear(): Promise<void> {
    this.mirror.clear();
    this.pending.clear();
    await this.scheduled;
    const tx = this.db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).clear();
    await committed(tx);
  }

  /** Wait until every write so far is committed (raises a write-behind failure). */
  async flush(): Promise<void> {
    await this.scheduled;
    if (this.pending.size) await this.commit();
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
  }

  /** Clear, close and delete the whole database ("forget this device"). */
  async destroy(): Promise<void> {
    await this.clear();
    this.db.close();
    await done(indexedDB.deleteDatabase(DB));
  }

  private write(key: string, value: Uint8Array | null): void {
    this.pending.set(key, value);
    this.scheduled ??= new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => this.commit());
  }

  private async commit(): Promise<void> {
    this.scheduled = undefined;
    const batch = [...this.pending];
    this.pending.clear();
    if (!batch.length) return;
    const tx = this.db.transaction(STORE, "readwrite");
    const store = tx.objectStore(STORE);
    for (const [key, value] of batch) {
      if (value === null) store.delete(key);
      else store.put(value, key);
    }
    try {
      await committed(tx);
    } catch (error) {
      this.failure = error;
    }
  }
}
