/**
 * Small signed statements, as opseal.crypto.statements: read / acknowledgement receipts
 * (both encodings; every receipt signed here uses `opseal/v1/receipt/2`), login proofs and
 * enrolment-code grants.
 */
import { DecodeError } from "./errors.js";
import { Reader, Writer, concat, decodeAll, equalBytes, label, lengthPrefixed } from "./encoding.js";
import type { SigningKey, VerifyKey } from "./keys.js";

export const RECEIPT_KINDS = ["read", "ack"] as const;
const RECEIPT_V1 = label("receipt");
const RECEIPT = label("receipt/2");
const LOGIN = label("login");
const ENROLMENT_CODE = label("enrolment-code");

/** What a device signs to prove it holds its key when it logs in. */
export function loginMessage(instanceId: string, deviceId: string, challenge: Uint8Array): Uint8Array {
  return new Writer(LOGIN).text(instanceId).text(deviceId).blob(challenge).finish();
}

/** What an organisation root signs to issue a one-time enrolment code. */
export function enrolmentCodeMessage(
  instanceId: string,
  organisationId: string,
  codeHash: Uint8Array,
  expiresAt: bigint,
): Uint8Array {
  return new Writer(ENROLMENT_CODE).text(instanceId).text(organisationId).blob(codeHash).u64(expiresAt).finish();
}

/** What the signer of a receipt sees: its epoch, that epoch's authenticator, its checkpoint. */
export class ReceiptGossip {
  constructor(
    readonly epoch: bigint,
    readonly authenticator: Uint8Array,
    readonly checkpoint: Uint8Array = new Uint8Array(0),
  ) {
    if (authenticator.length !== 32) throw new DecodeError("receipt: the epoch authenticator is 32 bytes");
  }
}

export interface ReceiptFields {
  instanceId: string;
  operationId: string;
  area: string;
  /** The 16 bytes of the message's UUID. */
  messageId: Uint8Array;
  kind: string;
  deviceId: string;
  signedAt: bigint;
  /** The sending device; empty only in a receipt of the first encoding. */
  senderDeviceId: string;
  gossip: ReceiptGossip | null;
}

export class Receipt implements ReceiptFields {
  readonly instanceId!: string;
  readonly operationId!: string;
  readonly area!: string;
  readonly messageId!: Uint8Array;
  readonly kind!: string;
  readonly deviceId!: string;
  readonly signedAt!: bigint;
  readonly senderDeviceId!: string;
  readonly gossip!: ReceiptGossip | null;
  readonly signature: Uint8Array;

  constructor(fields: ReceiptFields, signature: Uint8Array) {
    Object.assign(this, fields);
    this.signature = signature;
    if (!(RECEIPT_KINDS as readonly string[]).includes(this.kind)) {
      throw new DecodeError(`receipt: kind must be one of ${RECEIPT_KINDS.join(", ")}`);
    }
    if (this.messageId.length !== 16) throw new DecodeError("receipt: message id is 16 bytes");
    if (this.gossip !== null && !this.senderDeviceId) {
      throw new DecodeError("receipt: gossip needs the second encoding, which names the sender");
    }
  }

  get encoding(): 1 | 2 {
    return this.senderDeviceId ? 2 : 1;
  }

  static create(key: SigningKey, fields: ReceiptFields): Receipt {
    const draft = new Receipt(fields, new Uint8Array(0));
    return new Receipt(fields, key.sign(draft.toBeSigned()));
  }

  toBeSigned(): Uint8Array {
    if (!this.senderDeviceId) {
      return new Writer(RECEIPT_V1)
        .text(this.instanceId).text(this.operationId).text(this.area)
        .blob(this.messageId).text(this.kind).text(this.deviceId)
        .u64(this.signedAt)
        .finish();
    }
    const w = new Writer(RECEIPT).text(this.instanceId).text(this.operationId).text(this.area);
    w.text(this.senderDeviceId).blob(this.messageId).text(this.kind).text(this.deviceId);
    w.u64(this.signedAt).bool(this.gossip !== null);
    if (this.gossip !== null) {
      w.u64(this.gossip.epoch).blob(this.gossip.authenticator).blob(this.gossip.checkpoint);
    }
    return w.finish();
  }

  toBytes(): Uint8Array {
    return concat(this.toBeSigned(), lengthPrefixed(this.signature));
  }

  static fromBytes(data: Uint8Array): Receipt {
    const v1 = lengthPrefixed(RECEIPT_V1);
    const first = equalBytes(data.slice(0, v1.length), v1);
    return decodeAll(data, first ? RECEIPT_V1 : RECEIPT, "receipt", (r: Reader) => {
      const instanceId = r.text({ maxLen: 128, field: "instance_id" });
      const operationId = r.text({ maxLen: 128, field: "operation_id" });
      const area = r.text({ maxLen: 64, field: "area" });
      const senderDeviceId = first ? "" : r.text({ maxLen: 128, field: "sender_device_id" });
      if (!first && !senderDeviceId) throw new DecodeError("receipt: sender_device_id is empty");
      const messageId = r.blob({ exact: 16, field: "message_id" });
      const kind = r.text({ maxLen: 8, field: "kind" });
      const deviceId = r.text({ maxLen: 128, field: "device_id" });
      const signedAt = r.u64("signed_at");
      const gossip =
        first || !r.bool("has_gossip")
          ? null
          : new ReceiptGossip(
              r.u64("epoch"),
              r.blob({ exact: 32, field: "authenticator" }),
              r.blob({ maxLen: 1024, field: "checkpoint" }),
            );
      const fields = { instanceId, operationId, area, messageId, kind, deviceId, signedAt, senderDeviceId, gossip };
      return new Receipt(fields, r.blob({ exact: 64, field: "signature" }));
    });
  }

  verify(key: VerifyKey): void {
    key.verify(this.signature, this.toBeSigned(), "receipt");
  }
}
