/**
 * The HTTP and WebSocket client of the OpSeal API (design §16, §17), typed by `wire.ts`
 * (generated from the OpenAPI document). It speaks JSON and base64url and raises typed
 * errors; it checks nothing cryptographic — that is `verifier.ts`'s job.
 *
 * Error tree:
 *   ClientError
 *   ├── ApiError         the server refused (status, machine code, message, details)
 *   ├── TransportError   the server could not be reached, or answered something not JSON
 *   └── IntegrityError   something served failed verification (also recorded as a warning)
 */
import { loginMessage } from "../statements.js";
import { b64d, b64e } from "../encoding.js";
import type { SigningKey } from "../keys.js";
import type { components, operations } from "./wire.js";

export type Schemas = components["schemas"];
/** The JSON request body of endpoint `N` (from the OpenAPI document). */
export type Body<N extends keyof operations> = NonNullable<operations[N]["requestBody"]> extends { content: { "application/json": infer B } } ? B : never;
export type WireEvent = Schemas["Event"];
export type WireOperation = Schemas["Operation"];
export type WireOperationDetail = Schemas["OperationDetail"];
export type WireSyncPage = Schemas["SyncPage"];
export type WireStreamMessage = Schemas["StreamEvent"] | Schemas["StreamIdle"] | Schemas["StreamError"];
export type WireRevocationEntry = Schemas["RevocationEntry"];

/** Every failure of the client core. */
export class ClientError extends Error {
  override name = "ClientError";
}

/** A refusal by the server: HTTP status, machine code, message (never a secret). */
export class ApiError extends ClientError {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The server could not be reached, or its answer was not the API's. */
export class TransportError extends ClientError {
  override name = "TransportError";
}

/** Something the server served failed verification. */
export class IntegrityError extends ClientError {
  override name = "IntegrityError";
}

/** What `fetch` the client uses (the global one by default). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** The WebSocket constructor the client uses (the global one by default). */
export type WebSocketLike = new (url: string, protocols?: string | string[]) => WebSocket;

/** The subprotocols a stream offers: the API's, and the bearer token (a browser cannot set an
 * Authorization header on a WebSocket). */
export function streamProtocols(token: string): string[] {
  return ["opseal.v1", `opseal.bearer.${token}`];
}

interface CallOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean>;
  data?: Uint8Array;
  headers?: Record<string, string>;
}

/** One session with one server. */
export class Api {
  token: string | null = null;
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly fetchFn: FetchLike = (input, init) => globalThis.fetch(input, init),
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  private url(path: string, query?: CallOptions["query"]): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) params.set(k, String(v));
    const qs = params.toString();
    return this.baseUrl + path + (qs ? `?${qs}` : "");
  }

  /** Send one request; a status of 400 or more raises its `ApiError`. */
  async send(method: string, path: string, o: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    let body: BodyInit | undefined;
    if (o.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.body);
    } else if (o.data !== undefined) {
      headers["Content-Type"] = "application/octet-stream";
      body = o.data as unknown as BodyInit;
    }
    let response: Response;
    try {
      response = await this.fetchFn(this.url(path, o.query), { method, headers, ...(body === undefined ? {} : { body }) });
    } catch (exc) {
      throw new TransportError(`${method} ${path}: ${(exc as Error).message}`);
    }
    if (response.status >= 400) throw await refusal(`${method} ${path}`, response);
    return response;
  }

  /** One JSON request and its JSON answer. */
  async call<T>(method: string, path: string, o: CallOptions = {}): Promise<T> {
    const response = await this.send(method, path, o);
    try {
      return (await response.json()) as T;
    } catch {
      throw new TransportError(`${method} ${path}: the server's answer is not JSON`);
    }
  }

  // -- identity --
  instance(): Promise<Schemas["Instance"]> {
    return this.call("GET", "/api/v1/instance");
  }

  /** Challenge-response login: signs the challenge with the device key; keeps the token. */
  async login(instanceId: string, deviceId: string, key: SigningKey): Promise<void> {
    const request: Body<"auth_challenge"> = { device_id: deviceId };
    const challenge = await this.call<Schemas["Challenge"]>("POST", "/api/v1/auth/challenge", { body: request });
    const signature = key.sign(loginMessage(instanceId, deviceId, b64d(challenge.challenge, "challenge")));
    const body: Body<"auth_login"> = { device_id: deviceId, challenge: challenge.challenge, signature: b64e(signature) };
    this.token = (await this.call<Schemas["Session"]>("POST", "/api/v1/auth/login", { body })).token;
  }

  async logout(): Promise<void> {
    await this.call("POST", "/api/v1/auth/logout");
    this.token = null;
  }

  organisation(orgId: string): Promise<Schemas["Organisation"]> {
    return this.call("GET", `/api/v1/orgs/${enc(orgId)}`);
  }

  revocations(after: number): Promise<Schemas["Revocations"]> {
    return this.call("GET", "/api/v1/revocations", { query: { after, limit: 1000 } });
  }

  // -- operations and areas --
  async operations(): Promise<WireOperation[]> {
    return (await this.call<Schemas["Operations"]>("GET", "/api/v1/operations")).operations;
  }

  operation(op: string): Promise<WireOperationDetail> {
    return this.call("GET", `/api/v1/operations/${enc(op)}`);
  }

  async charterVersions(op: string): Promise<Uint8Array[]> {
    const body = await this.call<Schemas["CharterHistory"]>("GET", `/api/v1/operations/${enc(op)}/charter`);
    return body.versions.map((v) => b64d(v, "versions"));
  }

  async postKeyPackage(op: string, area: string, pkg: Uint8Array): Promise<number> {
    const body: Body<"post_key_package"> = { key_package: b64e(pkg) };
    return (await this.call<Schemas["Stored"]>("POST", `${areaPath(op, area)}/key-packages`, { body })).seq;
  }

  async postMessage(op: string, area: string, envelope: Uint8Array): Promise<number> {
    const body: Body<"post_message"> = { envelope: b64e(envelope) };
    return (await this.call<Schemas["Stored"]>("POST", `${areaPath(op, area)}/messages`, { body })).seq;
  }

  async events(op: string, area: string, after: number, limit = 500): Promise<WireEvent[]> {
    return (await this.call<Schemas["Events"]>("GET", `${areaPath(op, area)}/events`, { query: { after, limit } })).events;
  }

  sync(cursor: string, limit = 1000): Promise<WireSyncPage> {
    return this.call("GET", "/api/v1/sync", { query: { cursor, limit } });
  }

  // -- blobs and receipts --
  createBlob(op: string, area: string, size: number, sha256: Uint8Array): Promise<Schemas["BlobCreated"]> {
    const body: Body<"post_blob"> = { size, sha256: b64e(sha256) };
    return this.call("POST", `${areaPath(op, area)}/blobs`, { body });
  }

  putBlobChunk(blobId: string, offset: number, data: Uint8Array): Promise<Schemas["BlobProgress"]> {
    return this.call("PUT", `/api/v1/blobs/${enc(blobId)}`, { query: { offset }, data });
  }

  async downloadBlob(blobId: string): Promise<Uint8Array> {
    const response = await this.send("GET", `/api/v1/blobs/${enc(blobId)}/data`);
    return new Uint8Array(await response.arrayBuffer());
  }

  postReceipt(receipt: Uint8Array): Promise<Schemas["Receipt"]> {
    const body: Body<"post_receipt"> = { receipt: b64e(receipt) };
    return this.call("POST", "/api/v1/receipts", { body });
  }

  /** The stream's WebSocket URL from `cursor`. */
  streamUrl(cursor: string): string {
    return this.url("/api/v1/stream", { cursor }).replace(/^http/, "ws");
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

function areaPath(op: string, area: string): string {
  return `/api/v1/operations/${enc(op)}/areas/${enc(area)}`;
}

async function refusal(where: string, response: Response): Promise<ClientError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return new TransportError(`${where}: the server's answer (status ${response.status}) is not JSON`);
  }
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  if (typeof error?.code !== "string" || typeof error.message !== "string") {
    return new TransportError(`${where}: status ${response.status} without an error body`);
  }
  const details = typeof error.details === "object" && error.details !== null ? (error.details as Record<string, unknown>) : {};
  return new ApiError(response.status, error.code, `${where}: ${error.message}`, details);
}
