"""The audit log's Merkle tree (RFC 9162, Certificate Transparency v2) and signed checkpoints.

Leaves hash as ``SHA-256(0x00 || data)``, interior nodes as ``SHA-256(0x01 || left || right)``
and the empty tree as ``SHA-256("")``. A tree of ``n`` leaves splits at the largest power of
two smaller than ``n`` (RFC 9162 §2.1.1). Proofs are built as RFC 9162 §2.1.3.1 (PATH) and
§2.1.4.1 (SUBPROOF) define them and verified with the algorithms of §2.1.3.2 and §2.1.4.2.

Every proof element is the root hash of a contiguous range of leaves. The ``*_from``
functions ask a :data:`SubtreeHasher` for those ranges, so a server can answer from stored
interior hashes instead of loading every leaf; the list functions hash the leaves they are
given, in time linear in the tree size.

A :class:`Checkpoint` is the log's signed statement of its size and root at a given time.
Nothing here reads a clock or does I/O: timestamps and signing callbacks are passed in.
Every failed check raises :class:`MerkleError`; malformed checkpoint bytes raise
:class:`DecodeError`. Messages name the rule that failed, never a key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .encoding import Reader, Writer, label, sha256
from .errors import DecodeError, MerkleError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_LOG_ID",
    "SIGNATURE_SIZE",
    "Checkpoint",
    "SubtreeHasher",
    "consistency_proof",
    "consistency_proof_from",
    "inclusion_proof",
    "inclusion_proof_from",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every leaf, node and root hash (SHA-256)."""
SIGNATURE_SIZE = 64
"""Bytes in a checkpoint signature (Ed25519)."""
MAX_LOG_ID = 256
"""Upper bound for a checkpoint's log id, in UTF-8 bytes."""
EMPTY_ROOT = sha256(b"")
"""The root hash of the tree with no leaves."""

SubtreeHasher = Callable[[int, int], bytes]
"""``(start, end) -> root hash`` of the leaves ``start`` (inclusive) to ``end`` (exclusive)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_U64_MAX = 2**64 - 1
_CHECKPOINT_LABEL = label("checkpoint")


def leaf_hash(data: bytes) -> bytes:
    """The hash of the leaf whose entry is ``data``: ``SHA-256(0x00 || data)``."""
    return sha256(_LEAF_PREFIX, data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE_PREFIX, left, right)


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """The Merkle tree hash (RFC 9162 MTH) of ``leaf_hashes``, in one pass.

    The stack holds the roots of the perfect subtrees seen so far, one per set bit of the
    count; their right-to-left fold is the MTH's split at the largest power of two.
    """
    stack: list[bytes] = []
    for count, leaf in enumerate(leaf_hashes):
        node = leaf
        while count & 1:
            node = node_hash(stack.pop(), node)
            count >>= 1
        stack.append(node)
    return _fold(stack)


def _fold(stack: list[bytes]) -> bytes:
    """The root over perfect subtree roots listed left to right, largest first."""
    if not stack:
        return EMPTY_ROOT
    node = stack[-1]
    for left in reversed(stack[:-1]):
        node = node_hash(left, node)
    return node


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 inclusion proof (PATH) of leaf ``index`` in the tree of ``leaf_hashes``."""
    return inclusion_proof_from(_list_hasher(leaf_hashes), index, len(leaf_hashes))


def inclusion_proof_from(subtree: SubtreeHasher, index: int, tree_size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in a tree of ``tree_size``, hashes from ``subtree``."""
    _check_count(index, "index")
    _check_count(tree_size, "tree size")
    if index >= tree_size:
        raise MerkleError("inclusion proof: index is outside the tree")
    return [subtree(start, end) for start, end in _inclusion_ranges(index, tree_size)]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The RFC 9162 consistency proof from the first ``old_size`` leaves to all of them.

    The proof is empty when ``old_size`` is 0 or the whole tree, as RFC 9162 allows.
    """
    return consistency_proof_from(_list_hasher(leaf_hashes), old_size, len(leaf_hashes))


def consistency_proof_from(subtree: SubtreeHasher, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof from ``old_size`` to ``new_size`` leaves, hashes from ``subtree``."""
    _check_count(old_size, "old size")
    _check_count(new_size, "new size")
    if old_size > new_size:
        raise MerkleError("consistency proof: old size is larger than new size")
    if old_size in (0, new_size):
        return []
    return [subtree(start, end) for start, end in _consistency_ranges(old_size, new_size)]


def _list_hasher(leaf_hashes: Sequence[bytes]) -> SubtreeHasher:
    """A :data:`SubtreeHasher` over leaf hashes held in memory."""
    return lambda start, end: root_hash(leaf_hashes[start:end])


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def _inclusion_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PATH(index, D[tree_size]), nearest the leaf first."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, tree_size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start = mid
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PROOF(old_size, D[new_size]) for 0 < old < new."""
    ranges: list[tuple[int, int]] = []
    start, end, whole_old_tree = 0, new_size, True
    while old_size != end:
        mid = start + _split(end - start)
        if old_size <= mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start, whole_old_tree = mid, False
    if not whole_old_tree:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Raises :class:`MerkleError` unless the proof verifies (RFC 9162 §2.1.3.2).
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    _check_proof(proof)
    _check_count(index, "index")
    _check_count(tree_size, "tree size")
    if index >= tree_size:
        raise MerkleError("inclusion proof: index is outside the tree")
    if _root_from_inclusion(leaf_hash, index, tree_size, proof) != root:
        raise MerkleError("inclusion proof: computed root does not match")


def _root_from_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """Steps 2 to 5 of RFC 9162 §2.1.3.2: the root the proof leads to."""
    fn, sn, node = index, tree_size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise MerkleError("inclusion proof: too many hashes")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            fn, sn = _skip_left_edges(fn, sn)
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError("inclusion proof: too few hashes")
    return node


def _skip_left_edges(fn: int, sn: int) -> tuple[int, int]:
    """Shift both until ``fn`` is odd or zero: levels where the node has no sibling."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the newer tree.

    Uses RFC 9162 §2.1.4.2 for 0 < old < new. Equal sizes need an empty proof and equal
    roots; an empty old tree needs an empty proof and :data:`EMPTY_ROOT` as its root.
    Raises :class:`MerkleError` unless the proof verifies.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    _check_proof(proof)
    _check_count(old_size, "old size")
    _check_count(new_size, "new size")
    if old_size > new_size:
        raise MerkleError("consistency proof: old size is larger than new size")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise MerkleError("consistency proof: the empty tree has another root")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
    else:
        _verify_consistency_path(old_size, new_size, old_root, new_root, proof)


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """The cases with nothing to prove: an empty old tree, or the same tree twice."""
    if proof:
        raise MerkleError("consistency proof: must be empty for these sizes")
    if old_size == new_size and old_root != new_root:
        raise MerkleError("consistency proof: same size but different roots")


def _verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2 for 0 < old_size < new_size."""
    if not proof:
        raise MerkleError("consistency proof: empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    old_computed, new_computed = _roots_from_consistency(old_size, new_size, path)
    if old_computed != old_root:
        raise MerkleError("consistency proof: computed old root does not match")
    if new_computed != new_root:
        raise MerkleError("consistency proof: computed new root does not match")


def _roots_from_consistency(old_size: int, new_size: int, path: list[bytes]) -> tuple[bytes, bytes]:
    """Steps 3 to 7 of RFC 9162 §2.1.4.2: the old and new roots the path leads to."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise MerkleError("consistency proof: too many hashes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(node, fr), node_hash(node, sr)
            fn, sn = _skip_left_edges(fn, sn)
        else:
            sr = node_hash(sr, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleError("consistency proof: too few hashes")
    return fr, sr


def _check_count(value: int, name: str) -> None:
    """A size or index: a non-negative integer that fits the u64 encoding."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise MerkleError(f"{name} must be an integer from 0 to 2**64-1")


def _check_hash(value: bytes, name: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise MerkleError(f"{name} must be {HASH_SIZE} bytes")


def _check_proof(proof: Sequence[bytes]) -> None:
    for position, node in enumerate(proof):
        _check_hash(node, f"proof hash {position}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log's signed statement that it held ``size`` entries with ``root`` at ``timestamp``.

    ``log_id`` names the instance whose log this is and ``timestamp`` is in Unix seconds.
    The signature covers :meth:`signed_message`; :meth:`to_bytes` appends it as a final
    64-byte field.
    """

    log_id: str
    size: int
    root: bytes
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_statement(self.log_id, self.size, self.root, self.timestamp)
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise MerkleError(f"checkpoint: signature must be {SIGNATURE_SIZE} bytes")

    @classmethod
    def sign(
        cls,
        log_id: str,
        size: int,
        root: bytes,
        timestamp: int,
        sign: Callable[[bytes], bytes],
    ) -> Checkpoint:
        """A checkpoint whose signature ``sign`` (message -> 64-byte signature) makes."""
        _check_statement(log_id, size, root, timestamp)
        signature = sign(_statement(log_id, size, root, timestamp).finish())
        return cls(log_id, size, root, timestamp, signature)

    def signed_message(self) -> bytes:
        """The bytes the signature covers: the encoding without the signature field."""
        return _statement(self.log_id, self.size, self.root, self.timestamp).finish()

    def verify(self, verify_fn: Callable[[bytes, bytes], object]) -> None:
        """Check the signature with ``verify_fn(signature, message)``, which raises if invalid.

        Any exception from ``verify_fn``, or a ``False`` result, becomes a :class:`MerkleError`.
        """
        try:
            result = verify_fn(self.signature, self.signed_message())
        except Exception as exc:
            raise MerkleError("checkpoint: signature does not verify") from exc
        if result is False:
            raise MerkleError("checkpoint: signature does not verify")

    def to_bytes(self) -> bytes:
        """The encoding: label, log id, size, root, timestamp, then the signature."""
        writer = _statement(self.log_id, self.size, self.root, self.timestamp)
        return writer.blob(self.signature).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Decode :meth:`to_bytes` output strictly; a :class:`DecodeError` if malformed.

        The signature is not checked here: call :meth:`verify`.
        """
        reader = Reader(data, _CHECKPOINT_LABEL, what="checkpoint")
        log_id = reader.text(max_len=MAX_LOG_ID, field="log_id")
        size = reader.u64("size")
        root = reader.blob(exact=HASH_SIZE, field="root")
        timestamp = reader.u64("timestamp")
        signed = reader.consumed()
        signature = reader.blob(exact=SIGNATURE_SIZE, field="signature")
        reader.finish()
        try:
            checkpoint = cls(log_id, size, root, timestamp, signature)
        except MerkleError as exc:
            raise DecodeError(str(exc)) from exc
        if checkpoint.signed_message() != signed:
            raise DecodeError("checkpoint: non-canonical encoding")
        return checkpoint


def _statement(log_id: str, size: int, root: bytes, timestamp: int) -> Writer:
    """A writer holding the signed part of a checkpoint."""
    return Writer(_CHECKPOINT_LABEL).text(log_id).u64(size).blob(root).u64(timestamp)


def _check_statement(log_id: str, size: int, root: bytes, timestamp: int) -> None:
    """Validate the signed fields of a checkpoint."""
    if not isinstance(log_id, str) or not log_id:
        raise MerkleError("checkpoint: log id must be non-empty text")
    try:
        encoded = log_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MerkleError("checkpoint: log id is not valid Unicode text") from exc
    if len(encoded) > MAX_LOG_ID:
        raise MerkleError(f"checkpoint: log id longer than {MAX_LOG_ID} bytes")
    _check_count(size, "checkpoint size")
    _check_count(timestamp, "checkpoint timestamp")
    _check_hash(root, "checkpoint root")
