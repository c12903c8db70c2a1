/**
 * Revocations a device has learnt (design §3), as Python's `client/revocations.py`: every
 * statement served by `GET /revocations` is kept (the server cannot withdraw it later) and
 * counts for an operation only when it verifies against the root its verified charter lists
 * for the revoked key's organisation — never a key the server names.
 */
import { Certificate, Revocation, type RevokedSet, keyIdHex } from "../certs.js";
import type { Charter } from "../charter.js";
import { b64d } from "../encoding.js";
import type { Api } from "./api.js";
import type { SealedStore } from "./store.js";

/** Revoked key ids (hex), each with the time its revocation takes effect. */
export class RevokedKeys implements RevokedSet {
  constructor(private readonly times: ReadonlyMap<string, bigint> = new Map()) {}

  has(keyId: string): boolean {
    return this.times.has(keyId);
  }

  get size(): number {
    return this.times.size;
  }

  /** The keys whose revocation took effect at or before `when`. */
  at(when: bigint): RevokedSet {
    return new Set([...this.times].filter(([, t]) => t <= when).map(([k]) => k));
  }
}

interface Kept {
  org: string;
  statement: string;
  subject: string;
  issuer: string | null;
}

export type OnRefused = (reason: string) => Promise<void>;

export class Revocations {
  private kept: Kept[] | undefined;
  private readonly cache = new Map<string, RevokedKeys>();
  private readonly reported = new Set<string>();

  constructor(
    private readonly api: Api,
    private readonly local: SealedStore,
    private readonly onRefused: OnRefused,
  ) {}

  private async all(): Promise<Kept[]> {
    this.kept ??= (await this.local.getJSON<Kept[]>("revocations")) ?? [];
    return this.kept;
  }

  /** Fetch the revocations recorded since the last call; returns how many arrived. */
  async refresh(): Promise<number> {
    const kept = await this.all();
    let cursor = (await this.local.getJSON<number>("revocations-cursor")) ?? 0;
    let arrived = 0;
    for (;;) {
      const page = await this.api.revocations(cursor);
      for (const r of page.revocations) {
        kept.push({ org: r.org_id, statement: r.statement, subject: r.subject_certificate, issuer: r.issuer_certificate ?? null });
      }
      arrived += page.revocations.length;
      await this.local.putJSON("revocations", kept);
      await this.local.putJSON("revocations-cursor", page.cursor);
      if (!page.revocations.length || page.cursor <= cursor) break;
      cursor = page.cursor;
    }
    if (arrived) this.cache.clear();
    return arrived;
  }

  /** The keys revoked by the statements that verify against the roots `charter` lists. */
  async revoked(charter: Charter): Promise<RevokedKeys> {
    const key = keyIdHex(charter.hash);
    let out = this.cache.get(key);
    if (out === undefined) {
      const times = new Map<string, bigint>();
      for (const kept of await this.all()) {
        const rev = await this.verified(kept, charter);
        if (rev === null) continue;
        const id = keyIdHex(rev.revokedKeyId);
        const before = times.get(id);
        times.set(id, before === undefined || rev.revokedAt < before ? rev.revokedAt : before);
      }
      out = new RevokedKeys(times);
      this.cache.set(key, out);
    }
    return out;
  }

  private async verified(kept: Kept, charter: Charter): Promise<Revocation | null> {
    const member = charter.members.find((m) => m.organisationId === kept.org);
    if (member === undefined) return null; // not an organisation of this operation
    try {
      const rev = Revocation.fromBytes(b64d(kept.statement));
      if (rev.organisationId !== kept.org) throw new Error("the statement names another organisation");
      const issuer = kept.issuer === null ? undefined : Certificate.fromBytes(b64d(kept.issuer));
      rev.verify(member.rootKey, Certificate.fromBytes(b64d(kept.subject)), issuer);
      return rev;
    } catch (exc) {
      const reason = `revocation for ${kept.org}: ${(exc as Error).message}`;
      if (!this.reported.has(reason)) {
        this.reported.add(reason);
        await this.onRefused(reason);
      }
      return null;
    }
  }
}
