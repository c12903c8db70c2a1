/**
 * The app's screens (design §17), plain DOM over the verifying client core (`../client`):
 * enrol by request, unlock, operations and areas, reading with integrity warnings in place of
 * refused content, downloads decrypted here, acknowledgements, messages, seizures with a
 * photo, alerts and the real-time stream. Locks after inactivity; "forget this device" wipes
 * IndexedDB.
 */
import {
  type AlertView, ClientError, type OperationView, OpSealClient, type ShownEntry, type StreamHandle,
  completeEnrolment, createDevice, deviceState,
} from "../client/index.js";
import { CATEGORIES, TRANSPORT_MODES } from "../client/content.js";
import { button, field, form, h, input } from "./dom.js";
import { IndexedDbStore } from "./idb.js";

/** `config.json`, served next to the page: where the API is, and the lock delay. */
interface AppConfig {
  api: string;
  lockAfterSeconds: number;
}

const DEFAULT_LOCK = 15 * 60;

async function loadConfig(): Promise<AppConfig> {
  let raw: Record<string, unknown> = {};
  try {
    const answer = await fetch("config.json", { cache: "no-cache" });
    if (answer.ok) raw = (await answer.json()) as Record<string, unknown>;
  } catch {
    // no config.json: the API is this origin
  }
  const api = typeof raw["api"] === "string" && raw["api"] ? raw["api"].replace(/\/+$/, "") : location.origin;
  const lock = typeof raw["lock_after_seconds"] === "number" ? raw["lock_after_seconds"] : DEFAULT_LOCK;
  return { api, lockAfterSeconds: lock };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

class App {
  private client: OpSealClient | undefined;
  private stream: StreamHandle | undefined;
  private lockTimer: number | undefined;
  private watching = false;
  private view: { op: string; area: string } | undefined;
  private ops: OperationView[] = [];

  constructor(
    private readonly main: HTMLElement,
    private readonly status: HTMLElement,
    private store: IndexedDbStore,
    private readonly config: AppConfig,
  ) {}

  flush(): Promise<void> {
    return this.store.flush();
  }

  say(text: string): void {
    this.status.textContent = text;
  }

  private show(...children: (Node | null)[]): void {
    this.main.replaceChildren(...children.filter((c): c is Node => c !== null));
  }

  /** Run an action, reporting its failure plainly. */
  private async act(what: string, action: () => Promise<void>): Promise<void> {
    try {
      this.say(`${what}…`);
      await action();
      if (this.status.textContent === `${what}…`) this.say("");
    } catch (error) {
      this.say(`${what} failed: ${message(error)}`);
    }
  }

  async home(): Promise<void> {
    const state = await deviceState(this.store);
    if (state === "none") this.enrolForm();
    else if (state === "pending") this.completeForm(null);
    else if (this.client) await this.operations();
    else this.unlockForm();
  }

  /** `#/OP/AREA` opens an area (a link a colleague sends); what this device cannot read says so. */
  async route(hash: string): Promise<void> {
    const match = /^#\/([^/]+)\/([^/]+)$/.exec(hash);
    if (!match || !this.client) return;
    const [op, area] = [decodeURIComponent(match[1]!), decodeURIComponent(match[2]!)];
    await this.act("Opening", async () => {
      if (!this.ops.length) this.ops = await this.client!.operations();
      await this.area(op, area);
    });
  }

  // -- enrolment by request ---------------------------------------------------------------
  private enrolForm(): void {
    const org = input({ required: true });
    const user = input({ required: true });
    const device = input({ required: true, value: "browser" });
    const pass = input({ type: "password", required: true, autocomplete: "new-password" });
    const again = input({ type: "password", required: true, autocomplete: "new-password" });
    const submit = async () =>
      this.act("Creating this device's keys", async () => {
        if (pass.value !== again.value) throw new ClientError("the two passphrases differ");
        const pending = await createDevice(this.store, {
          server: this.config.api, organisationId: org.value.trim(), userId: user.value.trim(),
          deviceId: device.value.trim(), passphrase: pass.value,
        });
        this.completeForm(pending);
      });
    this.show(
      h("section", { "aria-label": "Enrol this device" },
        h("h2", {}, "Enrol this device"),
        h("p", {}, "This browser makes its own keys; they never leave it. Your focal point certifies the request."),
        form("Enrol", submit,
          field("Organisation", org), field("User", user), field("Device name", device),
          field("Passphrase", pass), field("Passphrase again", again),
          h("button", { type: "submit" }, "Create enrolment request"))),
    );
  }

  private completeForm(pending: { requestText: string; fingerprint: string } | null): void {
    const answer = h("textarea", { required: true });
    const pass = input({ type: "password", required: true, autocomplete: "current-password" });
    const submit = async () =>
      this.act("Completing the enrolment", async () => {
        await completeEnrolment(this.store, answer.value, pass.value);
        await this.unlock(pass.value);
      });
    const request = pending
      ? h("div", {},
          field("Enrolment request", h("textarea", { readonly: true }, pending.requestText)),
          h("p", {}, "Fingerprint to read out to your focal point: ", h("strong", { "aria-label": "Fingerprint" }, pending.fingerprint)))
      : h("p", {}, "An enrolment request from this browser is waiting for your focal point's answer.");
    this.show(
      h("section", { "aria-label": "Complete the enrolment" },
        h("h2", {}, "Complete the enrolment"), request,
        form("Complete enrolment", submit,
          field("Focal point's answer", answer), field("Passphrase", pass),
          h("button", { type: "submit" }, "Complete enrolment"))),
      this.forgetSection(),
    );
  }

  // -- lock and unlock ----------------------------------------------------------------------
  private unlockForm(): void {
    const pass = input({ type: "password", required: true, autocomplete: "current-password" });
    this.show(
      h("section", { "aria-label": "Unlock" },
        h("h2", {}, "Unlock this device"),
        form("Unlock", () => this.act("Unlocking", () => this.unlock(pass.value)),
          field("Passphrase", pass), h("button", { type: "submit" }, "Unlock"))),
      this.forgetSection(),
    );
  }

  private async unlock(passphrase: string): Promise<void> {
    const client = await OpSealClient.open(this.store, passphrase, { server: this.config.api });
    await client.login();
    this.client = client;
    this.armLock();
    await client.sync();
    this.follow();
    await this.operations();
  }

  /** Lock after `lockAfterSeconds` without a key press, click or touch. */
  private armLock(): void {
    const reset = () => {
      window.clearTimeout(this.lockTimer);
      if (!this.client) return;
      this.lockTimer = window.setTimeout(() => void this.lock("locked after inactivity"), this.config.lockAfterSeconds * 1000);
    };
    if (!this.watching) {
      for (const kind of ["keydown", "input", "pointerdown", "touchstart"]) document.addEventListener(kind, reset, { passive: true });
      this.watching = true;
    }
    reset();
  }

  async lock(reason = "locked"): Promise<void> {
    window.clearTimeout(this.lockTimer);
    this.stream?.close();
    this.stream = undefined;
    const client = this.client;
    this.client = undefined;
    this.view = undefined;
    await client?.logout().catch(() => undefined);
    await this.store.flush().catch((error: unknown) => this.say(`Saving this device's data failed: ${message(error)}`));
    this.say(`This device is ${reason}.`);
    this.unlockForm();
  }

  private forgetSection(): HTMLElement {
    return h("section", { "aria-label": "Forget this device" },
      button("Forget this device", () => this.act("Forgetting this device", async () => {
        if (!window.confirm("Wipe this device's keys and everything it stored?")) return;
        await this.lock("forgotten");
        await this.store.destroy();
        this.store = await IndexedDbStore.open();
        this.say("This device was forgotten: its keys and data are wiped.");
        this.enrolForm();
      })));
  }

  // -- operations and areas -----------------------------------------------------------------
  private follow(): void {
    if (!this.client) return;
    this.stream = this.client.stream({
      onEntry: (entry) => {
        if (this.view && entry.operation_id === this.view.op && entry.area === this.view.area) void this.area(this.view.op, this.view.area, false);
      },
    });
  }

  private async operations(): Promise<void> {
    const client = this.client;
    if (!client) return this.unlockForm();
    this.ops = await client.operations();
    const joinText = h("textarea", {});
    const fingerprint = input({});
    const join = async () =>
      this.act("Joining", async () => {
        const areas = await client.join(joinText.value, { fingerprint: fingerprint.value });
        this.say(`Asked to join ${areas.join(", ")}: a coordinator admits this device.`);
        await this.operations();
      });
    const list = h("ul", { "aria-label": "Operations" },
      ...this.ops.map((op) => h("li", {},
        h("h3", {}, `${op.code}: ${op.name}`),
        h("p", { class: "meta" }, `phase ${op.phase}, role ${op.role}${op.pinned ? "" : " (not verified: join it)"}`),
        h("nav", { "aria-label": `Areas of ${op.code}` },
          ...op.areas.filter((a) => a.member).map((a) => button(a.area, () => this.act("Opening", () => this.area(op.operationId, a.area)))),
        ))));
    this.show(
      this.toolbar(),
      h("section", { "aria-label": "Your operations" }, h("h2", {}, "Operations"), this.ops.length ? list : h("p", {}, "No operation yet.")),
      h("section", { "aria-label": "Join an operation" }, h("h2", {}, "Join an operation"),
        form("Join", join, field("Invitation", joinText), field("Coordinator fingerprint", fingerprint),
          h("button", { type: "submit" }, "Join"))),
      await this.warningsSection(),
      this.forgetSection(),
    );
  }

  private toolbar(): HTMLElement {
    const client = this.client;
    return h("nav", { "aria-label": "Device" },
      h("span", { class: "meta" }, client ? `${client.deviceId} (${client.organisationId})` : ""),
      button("Operations", () => this.act("Loading", () => this.operations())),
      button("Sync", () => this.act("Syncing", async () => {
        await this.client?.sync();
        if (this.view) await this.area(this.view.op, this.view.area);
        else await this.operations();
      })),
      button("Lock", () => this.lock()));
  }

  private async warningsSection(): Promise<HTMLElement | null> {
    const warnings = (await this.client?.warnings()) ?? [];
    if (!warnings.length) return null;
    return h("section", { "aria-label": "Integrity warnings", class: "warning" },
      h("h2", {}, "Integrity warnings"),
      h("ul", {}, ...warnings.map((w) => h("li", {}, `${w.operationId ?? "-"}/${w.area ?? "-"}: ${w.kind}: ${w.reason}`))));
  }

  /** One area: its entries (warnings in place of refused ones) and what may be posted. */
  async area(op: string, area: string, sync = true): Promise<void> {
    const client = this.client;
    if (!client) return this.unlockForm();
    const view = this.ops.find((o) => o.operationId === op)?.areas.find((a) => a.area === area);
    if (!view?.member) {
      this.show(this.toolbar(), h("p", { role: "alert" }, `Your organisation cannot read ${op}/${area}.`));
      return;
    }
    this.view = { op, area };
    const started = performance.now();
    const entries = sync ? await client.syncArea(op, area) : await client.read(op, area);
    const hasAlerts = entries.some((e) => e.kind === "message" && e.contentType === "alert");
    const alerts = hasAlerts ? await client.alerts(op, area) : []; // a second pass over the area
    this.show(
      this.toolbar(),
      h("section", { "aria-label": `Area ${area}` },
        h("h2", {}, `${op} / ${area}`),
        h("ol", { "aria-label": "Entries" }, ...entries.map((e) => this.entry(e, alerts)))),
      view.mayPost ? this.postForm(op, area) : null,
      view.mayPost && area === "seizures" ? this.seizureForm(op) : null,
    );
    const shown = entries.filter((e) => e.kind === "message").length;
    const refused = entries.filter((e) => e.kind === "warning").length;
    if (sync) this.say(`${shown} messages verified and decrypted in ${Math.round(performance.now() - started)} ms; ${refused} refused.`);
  }

  private entry(e: ShownEntry, alerts: AlertView[]): HTMLElement {
    if (e.kind === "warning") {
      return h("li", { role: "alert", class: "warning" }, `Integrity warning (${e.warning}): ${e.reason}. The content is not shown.`);
    }
    if (e.kind === "held") return h("li", { class: "meta" }, `Entry ${e.seq}: ${e.reason}`);
    const c = e.content;
    const when = new Date(e.sentAtMs).toISOString().replace("T", " ").slice(0, 16);
    const item = h("li", { class: "message", "aria-label": `Message from ${e.sender}` },
      h("p", { class: "meta" }, `${e.sender} (${e.organisationId}) · ${when} · ${e.contentType} · ${e.handling} · verified`));
    if (typeof c["text"] === "string") item.append(h("p", {}, c["text"]));
    if (typeof c["title"] === "string") item.append(h("h3", {}, c["title"]));
    if (e.contentType === "seizure") {
      item.append(h("p", {}, `Seizure ${String(c["record_id"])} (${String(c["reporting_country"])}, ${String(c["seizure_date"])})`));
    }
    if (e.contentType === "alert") item.append(this.alertBlock(e.messageId, alerts));
    for (const ref of Array.isArray(c["attachments"]) ? c["attachments"] : []) {
      const name = typeof ref === "object" && ref && !Array.isArray(ref) ? String(ref["file_name"] ?? "file") : "file";
      item.append(button(`Download ${name}`, () => this.act("Downloading", () => this.download(ref))));
    }
    if (e.requiresAck) item.append(button("Acknowledge", () => this.act("Acknowledging", async () => {
      await this.client?.acknowledge(e.messageId);
      this.say("Acknowledged.");
    })));
    return item;
  }

  private alertBlock(alertId: string, alerts: AlertView[]): HTMLElement {
    const alert = alerts.find((a) => a.message.messageId === alertId);
    if (!alert) return h("p", {});
    const outcome = input({});
    const view = this.view;
    return h("div", {},
      h("p", {}, `Alert to ${alert.targets.join(", ")}: ${alert.action}${alert.deadline ? ` (by ${alert.deadline})` : ""}`),
      h("ul", { "aria-label": "Responses" }, ...alert.responses.map((r) => h("li", {}, `${r.organisationId}: ${String(r.content["outcome"])}`))),
      alert.addressedToMe && view
        ? form("Respond", () => this.act("Responding", async () => {
            await this.client?.respond(view.op, view.area, alertId, outcome.value);
            await this.area(view.op, view.area);
          }), field("Outcome", outcome), h("button", { type: "submit" }, "Respond"))
        : null);
  }

  private async download(ref: unknown): Promise<void> {
    const file = await this.client!.download(ref);
    const url = URL.createObjectURL(new Blob([Uint8Array.from(file.bytes)], { type: file.mediaType }));
    const link = h("a", { href: url, download: file.fileName });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
    this.say(`Downloaded ${file.fileName} (hashes checked).`);
  }

  private postForm(op: string, area: string): HTMLElement {
    const text = h("textarea", { required: true });
    return h("section", { "aria-label": "Post a message" }, h("h2", {}, "Post a message"),
      form("Post", () => this.act("Posting", async () => {
        await this.client?.post(op, area, text.value);
        await this.area(op, area);
      }), field("Message", text), h("button", { type: "submit" }, "Post message")));
  }

  private seizureForm(op: string): HTMLElement {
    const choice = (options: readonly string[], value: string) =>
      h("select", {}, ...options.map((o) => h("option", { value: o, selected: o === value }, o)));
    const f = {
      record: input({ required: true }), caseRef: input({ required: true }),
      country: input({ required: true, maxlength: "2" }), date: input({ type: "date", required: true }),
      mode: choice(TRANSPORT_MODES, "express"), category: choice(CATEGORIES, "medicines"),
      quantity: input({ type: "number", min: "1", value: "1" }), ecommerce: input({ type: "checkbox" }),
    };
    const photo = h("input", { type: "file", accept: "image/*" });
    const submit = () => this.act("Posting the seizure", async () => {
      const file = photo.files?.[0];
      const record = {
        record_id: f.record.value.trim(), case_ref: f.caseRef.value.trim(),
        reporting_country: f.country.value.trim().toUpperCase(), seizure_date: f.date.value,
        transport_mode: f.mode.value, ecommerce: f.ecommerce.checked,
        goods: [{ category: f.category.value, quantity_items: Number(f.quantity.value) }],
      };
      const image = file ? { bytes: new Uint8Array(await file.arrayBuffer()), fileName: file.name, mediaType: file.type || "application/octet-stream" } : undefined;
      const id = await this.client?.postSeizure(op, record, image);
      await this.area(op, "seizures");
      this.say(`Seizure ${record.record_id} posted (${id}).`);
    });
    return h("section", { "aria-label": "Post a seizure" }, h("h2", {}, "Post a seizure"),
      form("Seizure", submit, field("Record id", f.record), field("Case reference", f.caseRef),
        field("Reporting country", f.country), field("Seizure date", f.date), field("Transport mode", f.mode),
        field("Goods category", f.category), field("Quantity (items)", f.quantity), field("E-commerce", f.ecommerce),
        field("Photo", photo), h("button", { type: "submit" }, "Post seizure")));
  }
}

export async function start(doc: Document): Promise<void> {
  const main = doc.getElementById("main");
  const status = doc.getElementById("status");
  if (!main || !status) throw new Error("the page lacks its main or status element");
  const app = new App(main, status, await IndexedDbStore.open(), await loadConfig());
  window.addEventListener("hashchange", () => void app.route(location.hash));
  window.addEventListener("pagehide", () => void app.flush());
  await app.home();
}
