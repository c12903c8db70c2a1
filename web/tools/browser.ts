/**
 * Drives Debian's Chromium with playwright-core for the browser tests and the benchmark
 * (design §17): one JSON command per stdin line, one JSON answer per stdout line
 * (`{"ok": ...}` or `{"error": {"name", "message"}}`). No browser is downloaded: Chromium is
 * the system's (`/usr/bin/chromium`, or OPSEAL_CHROMIUM). Every request the page makes is
 * recorded, with the policy violations and console errors, so a test can assert that nothing
 * went to another origin.
 *
 * Commands: open {url}, goto {url}, fill {label, value}, click {role, name}, setFile {label,
 * path}, download {name, path}, waitText {text, timeoutMs}, waitRole {role, name}, text {label?}, value {label},
 * count {role, name}, requests, problems, close.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";

type Role = Parameters<Page["getByRole"]>[0];
type Args = Record<string, unknown>;

const CHROMIUM = process.env["OPSEAL_CHROMIUM"] || "/usr/bin/chromium";

let browser: Browser | undefined;
let context: BrowserContext | undefined;
let page: Page | undefined;
let cdp: import("playwright-core").CDPSession | undefined;
/** Set by `holdStreams`: the pages opened after it reach no stream (bench/web.py times the
 * verification of an area's messages in the page, not behind it as the stream brings them). */
let holdStreams = false;
const requests: { url: string; method: string; type: string }[] = [];
const problems: string[] = [];

function str(args: Args, name: string): string {
  const value = args[name];
  if (typeof value !== "string") throw new Error(`command needs the text argument '${name}'`);
  return value;
}

function current(): Page {
  if (!page) throw new Error("no page: send 'open' first");
  return page;
}

async function open(args: Args): Promise<unknown> {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-default-apps"],
  });
  await context?.close();
  context = await browser.newContext({ acceptDownloads: true });
  context.setDefaultTimeout(60_000); // Argon2id at its full cost on a loaded CI machine
  // a WebSocket to the stream opens onto nothing: no frame comes, none reaches the server
  if (holdStreams) await context.routeWebSocket(/\/api\/v1\/stream/, () => undefined);
  page = await context.newPage();
  page.on("request", (r) => requests.push({ url: r.url(), method: r.method(), type: r.resourceType() }));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => void d.accept());
  return goto(args);
}

async function goto(args: Args): Promise<unknown> {
  const answer = await current().goto(str(args, "url"), { waitUntil: "load" });
  return { status: answer?.status() ?? 0, headers: (await answer?.allHeaders()) ?? {} };
}

async function download(args: Args): Promise<unknown> {
  const p = current();
  const [file] = await Promise.all([
    p.waitForEvent("download", { timeout: 20_000 }),
    p.getByRole("button", { name: str(args, "name"), exact: true }).first().click(),
  ]);
  const path = str(args, "path");
  await file.saveAs(path);
  return { fileName: file.suggestedFilename(), sha256: createHash("sha256").update(readFileSync(path)).digest("hex") };
}

async function text(args: Args): Promise<string> {
  const p = current();
  if (typeof args["label"] === "string") return (await p.getByLabel(args["label"], { exact: true }).first().innerText()) ?? "";
  return p.locator("body").innerText();
}

const COMMANDS: Record<string, (args: Args) => Promise<unknown>> = {
  open,
  goto,
  download,
  text,
  fill: async (a) => current().getByLabel(str(a, "label"), { exact: true }).first().fill(str(a, "value")),
  click: async (a) => current().getByRole(str(a, "role") as Role, { name: str(a, "name"), exact: true }).first().click(),
  setFile: async (a) => current().getByLabel(str(a, "label"), { exact: true }).first().setInputFiles(str(a, "path")),
  value: async (a) => current().getByLabel(str(a, "label"), { exact: true }).first().inputValue(),
  waitRole: async (a) => current().getByRole(str(a, "role") as Role, { name: str(a, "name"), exact: true }).first().waitFor(),
  count: async (a) => current().getByRole(str(a, "role") as Role, { name: str(a, "name"), exact: true }).count(),
  waitText: async (a) => {
    const timeout = typeof a["timeoutMs"] === "number" ? a["timeoutMs"] : 60_000;
    const locator = current().getByText(new RegExp(str(a, "text")));
    await locator.first().waitFor({ timeout });
    return locator.first().innerText();
  },
  html: async () => current().content(),
  /** The page's IndexedDB database `opseal`: each key, and which of `texts` any value holds. */
  storage: async (a) =>
    current().evaluate(async (texts: string[]) => {
      const db = await new Promise<IDBDatabase>((ok, fail) => {
        const r = indexedDB.open("opseal");
        r.onsuccess = () => ok(r.result);
        r.onerror = () => fail(r.error);
      });
      const store = db.transaction("kv", "readonly").objectStore("kv");
      const get = <T>(r: IDBRequest<T>) => new Promise<T>((ok, fail) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => fail(r.error))));
      const [keys, values] = await Promise.all([get(store.getAllKeys()), get(store.getAll())]);
      db.close();
      const latin = values.map((v) => Array.from(v as Uint8Array, (b) => String.fromCharCode(b)).join(""));
      const utf8 = (t: string) => Array.from(new TextEncoder().encode(t), (b) => String.fromCharCode(b)).join("");
      return { keys: keys.map(String), found: texts.filter((t) => latin.some((v) => v.includes(utf8(t)))) };
    }, (a["texts"] as string[] | undefined) ?? []),
  /** WebCrypto's Ed25519 verdict in the current page for each {key, signature, message}
   * (hex): true, false, or null when the key does not import. */
  ed25519: async (a) =>
    current().evaluate(async (cases: { key: string; signature: string; message: string }[]) => {
      const bytes = (x: string) => Uint8Array.from((x.match(/../g) ?? []).map((b) => parseInt(b, 16)));
      const out: (boolean | null)[] = [];
      for (const c of cases) {
        let key: CryptoKey;
        try {
          key = await crypto.subtle.importKey("raw", bytes(c.key), { name: "Ed25519" }, false, ["verify"]);
        } catch {
          out.push(null);
          continue;
        }
        out.push(await crypto.subtle.verify({ name: "Ed25519" }, key, bytes(c.signature), bytes(c.message)));
      }
      return out;
    }, a["cases"] as { key: string; signature: string; message: string }[]),
  holdStreams: async () => {
    holdStreams = true;
  },
  profileStart: async () => {
    cdp = await current().context().newCDPSession(current());
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.start");
  },
  profileStop: async () => {
    if (!cdp) throw new Error("no profile started");
    const { profile } = await cdp.send("Profiler.stop");
    const self = new Map<string, number>();
    const dt = profile.timeDeltas ?? [];
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    (profile.samples ?? []).forEach((id, i) => {
      const f = byId.get(id)!.callFrame;
      const name = `${f.functionName || "(anonymous)"}:${f.lineNumber}:${f.columnNumber}`;
      self.set(name, (self.get(name) ?? 0) + (dt[i] ?? 0) / 1000);
    });
    return [...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([n, ms]) => `${Math.round(ms)} ms ${n}`);
  },
  requests: async () => requests,
  problems: async () => problems,
  close: async () => {
    await browser?.close();
    browser = undefined;
  },
};

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let answer: unknown;
    try {
      const { cmd, ...args } = JSON.parse(line) as Args & { cmd: string };
      const run = COMMANDS[cmd];
      if (!run) throw new Error(`unknown command '${cmd}'`);
      answer = { ok: (await run(args)) ?? null };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      answer = { error: { name: e.name, message: e.message } };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
  await browser?.close();
}

await main();
