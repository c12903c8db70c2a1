/**
 * The invitation to an operation (Python's `client/invitation.py`): one block a coordinator
 * sends and a member pastes. Its root key must give its fingerprint, which the member compares
 * with the one the coordinator gives by a second channel.
 */
import { b64d } from "../encoding.js";
import { VerifyKey } from "../keys.js";
import { ClientError } from "./api.js";

export const BEGIN = "-----BEGIN OPSEAL INVITATION-----";
export const END = "-----END OPSEAL INVITATION-----";
const FIELDS = ["operation", "code", "name", "member", "coordinator", "server", "instance", "root-key", "fingerprint"];
const REQUIRED = ["operation", "coordinator", "server", "instance", "root-key", "fingerprint"];

export interface Invitation {
  operationId: string;
  code: string;
  name: string;
  coordinator: string;
  server: string;
  instanceId: string;
  rootKey: VerifyKey;
  member: string;
}

/** The invitation in `text` (a pasted block or a forwarded e-mail; `>` quoting is ignored). */
export function parseInvitation(text: string): Invitation {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/^[> \t]+/, "").trimEnd());
  const start = lines.indexOf(BEGIN);
  const end = start < 0 ? -1 : lines.indexOf(END, start);
  if (start < 0 || end < 0) throw new ClientError(`no invitation found (a block between ${BEGIN} and ${END})`);
  const fields = new Map<string, string>();
  for (const line of lines.slice(start + 1, end)) {
    const at = line.indexOf(":");
    const key = line.slice(0, at).trim();
    if (at < 0 || !FIELDS.includes(key)) throw new ClientError(`the invitation has an unexpected line: '${line.slice(0, 60)}'`);
    fields.set(key, line.slice(at + 1).trim());
  }
  const missing = REQUIRED.filter((k) => !fields.get(k));
  if (missing.length) throw new ClientError(`the invitation lacks ${missing.join(", ")}`);
  let rootKey: VerifyKey;
  try {
    rootKey = new VerifyKey(b64d(fields.get("root-key")!, "root-key"));
  } catch (exc) {
    throw new ClientError(`the invitation's root key is not a key: ${(exc as Error).message}`);
  }
  const digits = (s: string) => s.replace(/[^0-9]/g, "");
  if (digits(rootKey.fingerprint) !== digits(fields.get("fingerprint")!)) {
    throw new ClientError("the invitation's root key does not match its fingerprint: it was altered or mistyped");
  }
  return {
    operationId: fields.get("operation")!, code: fields.get("code") ?? "", name: fields.get("name") ?? "",
    coordinator: fields.get("coordinator")!, server: fields.get("server")!, instanceId: fields.get("instance")!,
    rootKey, member: fields.get("member") ?? "",
  };
}
