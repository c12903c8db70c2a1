/**
 * The audit log's Merkle tree (RFC 9162) and signed checkpoints, as opseal.crypto.merkle:
 * leaves hash as SHA-256(0x00 || data), nodes as SHA-256(0x01 || left || right), the empty
 * tree as SHA-256(""). Proofs are verified with the algorithms of RFC 9162 §2.1.3.2 and
 * §2.1.4.2. Sizes and indices are bigint (the encoding's u64). Every failed check raises
 * MerkleError; malformed checkpoint bytes raise DecodeError.
 */
import { DecodeError, MerkleError } from "./errors.js";
import { Reader, Writer, checkU64, equalBytes, label, sha256, utf8Length } from "./encoding.js";

export const HASH_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const MAX_LOG_ID = 256;
export const EMPTY_ROOT = sha256(new Uint8Array(0));
const CHECKPOINT = label("checkpoint");
const U64_MAX = (1n << 64n) - 1n;

export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(Uint8Array.of(0), data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(Uint8Array.of(1), left, right);
}

/** The Merkle tree hash (RFC 9162 MTH) of `leaves`, in one pass. */
export function rootHash(leaves: Iterable<Uint8Array>): Uint8Array {
  const stack: Uint8Array[] = [];
  let count = 0;
  for (const leaf of leaves) {
    let node = leaf;
    for (let c = count; c & 1; c >>= 1) node = nodeHash(stack.pop()!, node);
    stack.push(node);
    count++;
  }
  if (stack.length === 0) return EMPTY_ROOT;
  let node = stack[stack.length - 1]!;
  for (let i = stack.length - 2; i >= 0; i--) node = nodeHash(stack[i]!, node);
  return node;
}

function checkCount(value: bigint, name: string): void {
  if (typeof value !== "bigint" || value < 0n || value > U64_MAX) {
    throw new MerkleError(`${name} must be an integer from 0 to 2**64-1`);
  }
}

function checkHash(value: Uint8Array, name: string): void {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw new MerkleError(`${name} must be ${HASH_SIZE} bytes`);
  }
}

function checkProof(proof: readonly Uint8Array[]): void {
  proof.forEach((node, i) => checkHash(node, `proof hash ${i}`));
}

function skipLeftEdges(fn: bigint, sn: bigint): [bigint, bigint] {
  while (fn && !(fn & 1n)) {
    fn >>= 1n;
    sn >>= 1n;
  }
  return [fn, sn];
}

/** Check that `leaf` is leaf `index` of the tree of `treeSize` with `root`. */
export function verifyInclusion(
  leaf: Uint8Array,
  index: bigint,
  treeSize: bigint,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  checkHash(leaf, "leaf hash");
  checkHash(root, "root");
  checkProof(proof);
  checkCount(index, "index");
  checkCount(treeSize, "tree size");
  if (index >= treeSize) throw new MerkleError("inclusion proof: index is outside the tree");
  let fn = index;
  let sn = treeSize - 1n;
  let node = leaf;
  for (const sibling of proof) {
    if (sn === 0n) throw new MerkleError("inclusion proof: too many hashes");
    if (fn & 1n || fn === sn) {
      node = nodeHash(sibling, node);
      [fn, sn] = skipLeftEdges(fn, sn);
    } else {
      node = nodeHash(node, sibling);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new MerkleError("inclusion proof: too few hashes");
  if (!equalBytes(node, root)) throw new MerkleError("inclusion proof: computed root does not match");
}

/** Check that the tree of `oldSize` with `oldRoot` is a prefix of the newer tree. */
export function verifyConsistency(
  oldSize: bigint,
  newSize: bigint,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  checkHash(oldRoot, "old root");
  checkHash(newRoot, "new root");
  checkProof(proof);
  checkCount(oldSize, "old size");
  checkCount(newSize, "new size");
  if (oldSize > newSize) throw new MerkleError("consistency proof: old size is larger than new size");
  if (oldSize === 0n && !equalBytes(oldRoot, EMPTY_ROOT)) {
    throw new MerkleError("consistency proof: the empty tree has another root");
  }
  if (oldSize === 0n || oldSize === newSize) {
    if (proof.length) throw new MerkleError("consistency proof: must be empty for these sizes");
    if (oldSize === newSize && !equalBytes(oldRoot, newRoot)) {
      throw new MerkleError("consistency proof: same size but different roots");
    }
    return;
  }
  if (!proof.length) throw new MerkleError("consistency proof: empty");
  const path = [...proof];
  if ((oldSize & (oldSize - 1n)) === 0n) path.unshift(oldRoot);
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const node of path.slice(1)) {
    if (sn === 0n) throw new MerkleError("consistency proof: too many hashes");
    if (fn & 1n || fn === sn) {
      fr = nodeHash(node, fr);
      sr = nodeHash(node, sr);
      [fn, sn] = skipLeftEdges(fn, sn);
    } else {
      sr = nodeHash(sr, node);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new MerkleError("consistency proof: too few hashes");
  if (!equalBytes(fr, oldRoot)) throw new MerkleError("consistency proof: computed old root does not match");
  if (!equalBytes(sr, newRoot)) throw new MerkleError("consistency proof: computed new root does not match");
}

function checkStatement(logId: string, size: bigint, root: Uint8Array, timestamp: bigint): void {
  if (typeof logId !== "string" || !logId) throw new MerkleError("checkpoint: log id must be non-empty text");
  if (utf8Length(logId) > MAX_LOG_ID) throw new MerkleError(`checkpoint: log id longer than ${MAX_LOG_ID} bytes`);
  checkCount(size, "checkpoint size");
  checkCount(timestamp, "checkpoint timestamp");
  checkHash(root, "checkpoint root");
}

function statement(logId: string, size: bigint, root: Uint8Array, timestamp: bigint): Writer {
  return new Writer(CHECKPOINT).text(logId).u64(size).blob(root).u64(timestamp);
}

/** The log's signed statement that it held `size` entries with `root` at `timestamp`. */
export class Checkpoint {
  constructor(
    readonly logId: string,
    readonly size: bigint,
    readonly root: Uint8Array,
    readonly timestamp: bigint,
    readonly signature: Uint8Array,
  ) {
    checkStatement(logId, size, root, timestamp);
    if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_SIZE) {
      throw new MerkleError(`checkpoint: signature must be ${SIGNATURE_SIZE} bytes`);
    }
  }

  static sign(
    logId: string, size: bigint, root: Uint8Array, timestamp: bigint, sign: (m: Uint8Array) => Uint8Array,
  ): Checkpoint {
    checkStatement(logId, size, root, timestamp);
    return new Checkpoint(logId, size, root, timestamp, sign(statement(logId, size, root, timestamp).finish()));
  }

  signedMessage(): Uint8Array {
    return statement(this.logId, this.size, this.root, this.timestamp).finish();
  }

  /** Check the signature with `verifyFn(signature, message)`, which throws if invalid. */
  verify(verifyFn: (signature: Uint8Array, message: Uint8Array) => unknown): void {
    let result: unknown;
    try {
      result = verifyFn(this.signature, this.signedMessage());
    } catch {
      throw new MerkleError("checkpoint: signature does not verify");
    }
    if (result === false) throw new MerkleError("checkpoint: signature does not verify");
  }

  toBytes(): Uint8Array {
    return statement(this.logId, this.size, this.root, this.timestamp).blob(this.signature).finish();
  }

  static fromBytes(data: Uint8Array): Checkpoint {
    const r = new Reader(data, CHECKPOINT, "checkpoint");
    const logId = r.text({ maxLen: MAX_LOG_ID, field: "log_id" });
    const size = r.u64("size");
    const root = r.blob({ exact: HASH_SIZE, field: "root" });
    const timestamp = r.u64("timestamp");
    const signed = r.consumed();
    const signature = r.blob({ exact: SIGNATURE_SIZE, field: "signature" });
    r.finish();
    let checkpoint: Checkpoint;
    try {
      checkpoint = new Checkpoint(logId, size, root, timestamp, signature);
    } catch (exc) {
      if (exc instanceof MerkleError) throw new DecodeError(exc.message);
      throw exc;
    }
    if (!equalBytes(checkpoint.signedMessage(), signed)) throw new DecodeError("checkpoint: non-canonical encoding");
    return checkpoint;
  }
}

export { checkU64 };
