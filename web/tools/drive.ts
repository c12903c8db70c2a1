/**
 * Drives the TypeScript client core from a test (tests/web/test_core.py): one JSON command
 * per line on stdin, one JSON answer per line on stdout (`{"ok": ...}` or `{"error": ...}`).
 * Everything runs through the public API of web/src/client against the real server; bytes
 * travel as base64url.
 */
import { createInterface } from "node:readline";
import { b64d, b64e, hex, sha256 } from "../src/encoding.js";
import {
  MemoryStore, OpSealClient, type StreamHandle, type WireEvent, completeEnrolment, createDevice,
} from "../src/client/index.js";

const FAST = { timeCost: 1, memoryKib: 1024, parallelism: 1 };
const store = new MemoryStore();
let client: OpSealClient | undefined;
let stream: StreamHandle | undefined;
const streamed: { seq: number; area: string; kind: string; messageId: string | null; refused: number }[] = [];
const waits: string[] = [];

type Args = Record<string, unknown>;
const s = (a: Args, k: string) => a[k] as string;

function need(): OpSealClient {
  if (client === undefined) throw new Error("open the client first");
  return client;
}

const commands: Record<string, (a: Args) => Promise<unknown>> = {
  async create(a) {
    const p = await createDevice(store, {
      server: s(a, "server"), organisationId: s(a, "org"), userId: s(a, "user"), deviceId: s(a, "device"),
      passphrase: s(a, "passphrase"), kdf: FAST,
    });
    return { requestText: p.requestText, fingerprint: p.fingerprint };
  },
  async complete(a) {
    return completeEnrolment(store, s(a, "response"), s(a, "passphrase"), { kdf: FAST, logKey: s(a, "logKey") });
  },
  async open(a) {
    client = await OpSealClient.open(store, s(a, "passphrase"), a["server"] ? { server: s(a, "server") } : {});
    return client.info;
  },
  login: () => need().login(),
  join: (a) => need().join(s(a, "invitation"), { fingerprint: s(a, "fingerprint") }),
  operations: () => need().operations(),
  sync: () => need().sync(),
  read: (a) => need().read(s(a, "op"), s(a, "area")),
  warnings: () => need().warnings(),
  async download(a) {
    const file = await need().download(a["ref"]);
    return { data: b64e(file.bytes), sha256: hex(sha256(file.bytes)), fileName: file.fileName, mediaType: file.mediaType };
  },
  acknowledge: (a) => need().acknowledge(s(a, "messageId")),
  post: (a) => need().post(s(a, "op"), s(a, "area"), s(a, "text")),
  postSeizure(a) {
    const photo = a["photo"] as { data: string; fileName: string; mediaType: string } | undefined;
    const file = photo && { bytes: b64d(photo.data), fileName: photo.fileName, mediaType: photo.mediaType };
    return need().postSeizure(s(a, "op"), a["record"] as Record<string, never>, file);
  },
  alerts: (a) => need().alerts(s(a, "op"), s(a, "area")),
  respond: (a) => need().respond(s(a, "op"), s(a, "area"), s(a, "alertId"), s(a, "outcome")),
  async streamStart() {
    streamed.length = 0;
    stream = need().stream({
      onEntry: (e: WireEvent, r) => streamed.push({ seq: e.seq, area: e.area, kind: e.kind, messageId: e.message_id ?? null, refused: r.refused }),
      onWait: (ms, reason) => waits.push(`${ms} ${reason}`),
    });
    return null;
  },
  async streamWait(a) {
    const until = Date.now() + Number(a["timeoutMs"] ?? 10_000);
    while (streamed.length < Number(a["count"]) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    return { entries: streamed, waits };
  },
  async streamClose() {
    stream?.close();
    await stream?.done;
    stream = undefined;
    return null;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const { cmd, ...args } = JSON.parse(line) as { cmd: string } & Args;
  let answer: unknown;
  try {
    const run = commands[cmd];
    if (run === undefined) throw new Error(`unknown command ${cmd}`);
    answer = { ok: (await run(args)) ?? null };
  } catch (exc) {
    answer = { error: { name: (exc as Error).name, message: (exc as Error).message } };
  }
  process.stdout.write(`${JSON.stringify(answer, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}\n`);
}
stream?.close();
