/**
 * The real-time stream (design §13, §17): a WebSocket that delivers this device's new
 * entries from a cursor. Each entry is verified (through the same `Verifier.ingest` as a
 * sync) before the cursor moves past it; a closed stream reconnects from the last cursor
 * processed, so nothing is missed and nothing is taken twice. A browser cannot set an
 * Authorization header on a WebSocket: the bearer token travels as a subprotocol.
 */
import { type Api, type WebSocketLike, type WireEvent, type WireStreamMessage, streamProtocols } from "./api.js";
import type { SyncReport, Verifier } from "./verifier.js";

export interface StreamOptions {
  /** Called after each entry was verified (and recorded, or refused as a warning). */
  onEntry?: (entry: WireEvent, report: SyncReport) => void;
  /** Called when the stream has caught up. */
  onIdle?: (cursor: string) => void;
  /** Called before each wait to reconnect, with the delay in milliseconds and the reason. */
  onWait?: (delayMs: number, reason: string) => void;
}

/** A running stream. */
export interface StreamHandle {
  /** Stop following (no reconnect). */
  close(): void;
  /** Settles once closed. */
  readonly done: Promise<void>;
}

const FIRST_DELAY = 500;
const MAX_DELAY = 10_000;

export class Follower implements StreamHandle {
  private socket: WebSocket | undefined;
  private closed = false;
  private delay = FIRST_DELAY;
  private queue: Promise<void> = Promise.resolve();
  private finish!: () => void;
  readonly done = new Promise<void>((resolve) => (this.finish = resolve));

  constructor(
    private readonly api: Api,
    private readonly verifier: Verifier,
    private readonly WS: WebSocketLike,
    private readonly login: () => Promise<void>,
    private readonly o: StreamOptions,
  ) {}

  start(): this {
    void this.connect();
    return this;
  }

  close(): void {
    this.closed = true;
    this.socket?.close(1000);
    this.finish();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    if (!this.api.token) {
      try {
        await this.login();
      } catch (exc) {
        return this.retry(`login failed: ${(exc as Error).message}`);
      }
    }
    let ws: WebSocket;
    try {
      ws = new this.WS(this.api.streamUrl(await this.verifier.cursor()), streamProtocols(this.api.token!));
    } catch (exc) {
      return this.retry(`stream not opened: ${(exc as Error).message}`);
    }
    this.socket = ws;
    ws.onmessage = (event: MessageEvent) => {
      this.queue = this.queue.then(() => this.handle(String(event.data))).catch((exc) => {
        ws.close(1011);
        this.o.onWait?.(0, `stream entry not processed: ${(exc as Error).message}`);
      });
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.socket !== ws) return;
      void this.queue.then(() => this.retry(`stream closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`));
    };
  }

  private async handle(frame: string): Promise<void> {
    const message = JSON.parse(frame) as WireStreamMessage;
    if (message.type === "event") {
      const report = { entries: 0, messages: 0, commits: 0, keyPackages: 0, held: 0, refused: 0 };
      await this.verifier.exclusive(async () => {
        await this.verifier.ingest(message.event, report);
        await this.verifier.advance(message.cursor);
      });
      this.delay = FIRST_DELAY;
      this.o.onEntry?.(message.event, report);
    } else if (message.type === "idle") {
      await this.verifier.exclusive(() => this.verifier.advance(message.cursor));
      this.delay = FIRST_DELAY;
      this.o.onIdle?.(message.cursor);
    } else if (message.type === "error") {
      this.api.token = null; // revoked or expired: log in again before reconnecting
    }
  }

  private async retry(reason: string): Promise<void> {
    if (this.closed) return;
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
    this.o.onWait?.(wait, reason);
    await new Promise((resolve) => setTimeout(resolve, wait));
    await this.connect();
  }
}
