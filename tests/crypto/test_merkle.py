"""Tests for the RFC 9162 Merkle tree, its proofs and signed checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Callable, Iterator, Sequence
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from opseal.crypto import merkle
from opseal.crypto.encoding import Writer, label
from opseal.crypto.errors import CryptoError, DecodeError, MerkleError, UnsupportedVersion
from opseal.crypto.merkle import (
    EMPTY_ROOT,
    Checkpoint,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Known answers from an independent implementation: transparency-dev/merkle (Go, Apache-2.0),
# https://github.com/transparency-dev/merkle
#   testonly/constants.go  LeafInputs(), NodeHashes(), RootHashes()   (commit 582a6ad1)
#   proof/verify_test.go   inclusionProofs, consistencyProofs, sha256SomeHash (commit 02194e9a)
# The hex strings below are copied verbatim from those files.
# ---------------------------------------------------------------------------------------------

GO_LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# NodeHashes(): [level][index]; level 0 holds the leaf hashes.
GO_NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    [
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ],
]

# RootHashes(): indexed by tree size, starting from the empty tree.
GO_ROOT_HASHES = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# inclusionProofs: (leaf, size, proof) where `leaf` is 1-based, as in the Go file.
GO_INCLUSION_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        3,
        3,
        [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        ],
    ),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# consistencyProofs: (size1, size2, proof).
GO_CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

GO_SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

GO_LEAF_HASHES = [leaf_hash(data) for data in GO_LEAF_INPUTS]


def _hashes(hex_list: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hex_list]


# ---------------------------------------------------------------------------------------------
# A direct, recursive transcription of the RFC 9162 definitions, used only as a cross-check.
# ---------------------------------------------------------------------------------------------


def _ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _ref_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over leaf hashes."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _ref_split(len(hashes))
    return _ref_node(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    if len(hashes) == 1:
        return []
    k = _ref_split(len(hashes))
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if whole else [ref_mth(hashes)]
    k = _ref_split(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], whole), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


# ---------------------------------------------------------------------------------------------
# Shared data for the property tests.
# ---------------------------------------------------------------------------------------------

MAX_SIZE = 300
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(MAX_SIZE + 1)]


@cache
def tree_root(size: int) -> bytes:
    """The root of the property-test tree of ``size`` leaves."""
    return root_hash(LEAVES[:size])


def subtree_of_leaves(start: int, end: int) -> bytes:
    """A SubtreeHasher over the property-test leaves."""
    return root_hash(LEAVES[start:end])


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted."""
    changed = bytearray(data)
    changed[(bit // 8) % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


def rejects(check: Callable[..., None], *args: object) -> bool:
    """Whether ``check(*args)`` raises :class:`MerkleError`."""
    try:
        check(*args)
    except MerkleError:
        return True
    return False


def proof_variants(proof: list[bytes], bit: int, extra: bytes) -> Iterator[tuple[str, list]]:
    """Every single change to a proof: one bit flipped, one hash dropped, one hash added."""
    for i in range(len(proof)):
        yield f"flip proof[{i}]", [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        yield f"drop proof[{i}]", proof[:i] + proof[i + 1 :]
        yield f"duplicate proof[{i}]", [*proof[: i + 1], proof[i], *proof[i + 1 :]]
    for i in range(len(proof) + 1):
        yield f"insert at {i}", [*proof[:i], extra, *proof[i:]]


# ---------------------------------------------------------------------------------------------
# Hashing and roots.
# ---------------------------------------------------------------------------------------------


def test_leaf_hashes_match_the_go_reference() -> None:
    """leaf_hash gives the level-0 hashes of transparency-dev/merkle's NodeHashes."""
    assert [h.hex() for h in GO_LEAF_HASHES] == GO_NODE_HASHES[0]


def test_node_hashes_match_the_go_reference() -> None:
    """node_hash over two children gives each higher level of NodeHashes."""
    for level in range(1, len(GO_NODE_HASHES)):
        below = _hashes(GO_NODE_HASHES[level - 1])
        pairs = zip(below[::2], below[1::2], strict=True)
        assert [node_hash(left, right).hex() for left, right in pairs] == GO_NODE_HASHES[level]


@pytest.mark.parametrize("size", range(len(GO_ROOT_HASHES)))
def test_root_hash_matches_the_go_reference(size: int) -> None:
    """root_hash of the first ``size`` reference leaves equals RootHashes()[size]."""
    assert root_hash(GO_LEAF_HASHES[:size]) == GO_ROOT_HASHES[size]


def test_empty_root_is_the_hash_of_nothing() -> None:
    """EMPTY_ROOT is SHA-256 of the empty string and the root of no leaves."""
    assert EMPTY_ROOT == GO_ROOT_HASHES[0] == hashlib.sha256(b"").digest()
    assert root_hash([]) == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    """A node hash never equals the leaf hash of the same concatenated bytes."""
    left, right = GO_LEAF_HASHES[0], GO_LEAF_HASHES[1]
    assert leaf_hash(left + right) != node_hash(left, right)
    assert node_hash(left, right) != node_hash(right, left)


def test_root_hash_matches_the_rfc_definition_for_small_trees() -> None:
    """root_hash equals the recursive RFC 9162 MTH for every size up to 130."""
    for size in range(131):
        assert root_hash(LEAVES[:size]) == ref_mth(LEAVES[:size])


def test_root_hash_accepts_an_iterator() -> None:
    """root_hash of a generator equals root_hash of the same list."""
    assert root_hash(iter(LEAVES[:77])) == tree_root(77)


def test_root_hash_handles_a_hundred_thousand_leaves() -> None:
    """A 100 000-leaf tree hashes, proves and verifies in one linear pass per call."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    root = root_hash(leaves)
    verify_inclusion(leaves[65_537], 65_537, 100_000, inclusion_proof(leaves, 65_537), root)
    old_root = root_hash(leaves[:65_537])
    verify_consistency(65_537, 100_000, old_root, root, consistency_proof(leaves, 65_537))


# ---------------------------------------------------------------------------------------------
# Inclusion proofs.
# ---------------------------------------------------------------------------------------------


def go_inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> dict[str, tuple]:
    """The corruptions transparency-dev/merkle's verify_test.go applies to inclusion proofs."""
    probes: dict[str, tuple] = {
        "index - 1": (leaf, index - 1, size, proof, root),
        "index + 1": (leaf, index + 1, size, proof, root),
        "index ^ 2": (leaf, index ^ 2, size, proof, root),
        "size * 2": (leaf, index, size * 2, proof, root),
        "size / 2": (leaf, index, size // 2, proof, root),
        "wrong leaf": (b"WrongLeaf", index, size, proof, root),
        "empty root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, GO_SOME_HASH),
        "trailing garbage": (leaf, index, size, [*proof, b""], root),
        "trailing root": (leaf, index, size, [*proof, root], root),
        "preceding garbage": (leaf, index, size, [b"", *proof], root),
        "preceding root": (leaf, index, size, [root, *proof], root),
    }
    for i in range(len(proof)):
        changed = [*proof[:i], flip(proof[i], 3), *proof[i + 1 :]]
        probes[f"proof[{i}] bit 3"] = (leaf, index, size, changed, root)
    if proof:
        probes["removed component"] = (leaf, index, size, proof[:-1], root)
    if len(proof) > 1:
        inserted = [proof[0], GO_SOME_HASH, *proof[1:]]
        probes["inserted component"] = (leaf, index, size, inserted, root)
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), GO_INCLUSION_PROOFS)
def test_inclusion_proof_matches_the_go_reference(leaf: int, size: int, proof: list[str]) -> None:
    """inclusion_proof reproduces each published proof and the proof verifies."""
    index = leaf - 1
    expected = _hashes(proof)
    assert inclusion_proof(GO_LEAF_HASHES[:size], index) == expected
    verify_inclusion(GO_LEAF_HASHES[index], index, size, expected, GO_ROOT_HASHES[size])


@pytest.mark.parametrize(("leaf", "size", "proof"), GO_INCLUSION_PROOFS)
def test_inclusion_rejects_the_go_corruptions(leaf: int, size: int, proof: list[str]) -> None:
    """Every corruption the Go test suite applies to a published proof is rejected."""
    index = leaf - 1
    probes = go_inclusion_probes(
        index, size, _hashes(proof), GO_ROOT_HASHES[size], GO_LEAF_HASHES[index]
    )
    accepted = [name for name, args in probes.items() if not rejects(verify_inclusion, *args)]
    assert accepted == []


def test_inclusion_proof_matches_the_rfc_definition_for_small_trees() -> None:
    """inclusion_proof equals the recursive RFC 9162 PATH for every leaf of trees up to 64."""
    for size in range(1, 65):
        for index in range(size):
            assert inclusion_proof(LEAVES[:size], index) == ref_path(index, LEAVES[:size])


def test_every_tree_size_proves_inclusion() -> None:
    """For every size up to 300 the first, middle and last leaves have verifying proofs."""
    for size in range(1, MAX_SIZE + 1):
        for index in {0, size // 2, size - 1}:
            proof = inclusion_proof(LEAVES[:size], index)
            verify_inclusion(LEAVES[index], index, size, proof, tree_root(size))


def test_single_leaf_tree_has_an_empty_proof() -> None:
    """A one-leaf tree's root is its leaf hash, proven by an empty proof (Go's single entry)."""
    leaf = leaf_hash(b"data")
    assert inclusion_proof([leaf], 0) == []
    verify_inclusion(leaf, 0, 1, [], leaf)
    assert rejects(verify_inclusion, leaf, 0, 1, [], EMPTY_ROOT)
    assert rejects(verify_inclusion, leaf, 0, 1, [], b"")
    assert rejects(verify_inclusion, b"", 0, 1, [], leaf)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 4), (8, 8)])
def test_inclusion_rejects_an_index_outside_the_tree(index: int, size: int) -> None:
    """Proving or verifying a leaf the tree does not hold raises MerkleError."""
    with pytest.raises(MerkleError):
        inclusion_proof(LEAVES[:size], index)
    with pytest.raises(MerkleError):
        verify_inclusion(GO_SOME_HASH, index, size, [], GO_SOME_HASH)


@pytest.mark.parametrize("bad", [-1, 2**64, 1.0, "1", True, None])
def test_inclusion_rejects_a_size_that_is_not_a_u64(bad: object) -> None:
    """A negative, oversized or non-integer size or index raises MerkleError."""
    with pytest.raises(MerkleError):
        verify_inclusion(LEAVES[0], 0, bad, [], LEAVES[0])  # type: ignore[arg-type]
    with pytest.raises(MerkleError):
        verify_inclusion(LEAVES[0], bad, 1, [], LEAVES[0])  # type: ignore[arg-type]
    with pytest.raises(MerkleError):
        inclusion_proof_from(lambda start, end: b"", 0, bad)  # type: ignore[arg-type]


def test_inclusion_rejects_hashes_of_the_wrong_length() -> None:
    """A leaf, root or proof element that is not 32 bytes raises MerkleError."""
    proof = inclusion_proof(LEAVES[:5], 2)
    root = tree_root(5)
    assert rejects(verify_inclusion, LEAVES[2][:31], 2, 5, proof, root)
    assert rejects(verify_inclusion, LEAVES[2], 2, 5, proof, root + b"\x00")
    assert rejects(verify_inclusion, LEAVES[2], 2, 5, [*proof[:-1], proof[-1] + b"\x00"], root)
    assert rejects(verify_inclusion, LEAVES[2], 2, 5, [bytearray(p) for p in proof], root)


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[int, int]:
    """A tree size up to MAX_SIZE and a leaf index inside it."""
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@settings(max_examples=400, deadline=None)
@given(case=inclusion_cases(), bit=st.integers(0, 255), other=st.integers(0, MAX_SIZE))
def test_inclusion_proofs_verify_and_fail_after_any_change(
    case: tuple[int, int], bit: int, other: int
) -> None:
    """A proof verifies, and no single change to leaf, root, index, size or proof does."""
    size, index = case
    leaf, root = LEAVES[index], tree_root(size)
    proof = inclusion_proof(LEAVES[:size], index)
    assert proof == inclusion_proof_from(subtree_of_leaves, index, size)
    verify_inclusion(leaf, index, size, proof, root)
    changes: dict[str, tuple] = {
        "leaf": (flip(leaf, bit), index, size, proof, root),
        "root": (leaf, index, size, proof, flip(root, bit)),
        "other leaf": (LEAVES[(index + 1) % (size + 1)], index, size, proof, root),
    }
    for new_index in {index - 1, index + 1, index ^ 1, index ^ 2, size, other % (size + 1)}:
        if new_index != index:
            changes[f"index {new_index}"] = (leaf, new_index, size, proof, root)
    # A root commits to its size only through the signed checkpoint: RFC 9162 accepts, say,
    # the size-3 proof of leaf 0 under size 4 with the size-3 root. So a changed size is
    # checked against the true root of the changed size, which is what a verifier holds.
    for new_size in {size - 1, size + 1, size * 2, size // 2, other}:
        if new_size != size and 0 <= new_size <= MAX_SIZE:
            changes[f"size {new_size}"] = (leaf, index, new_size, proof, tree_root(new_size))
    for name, changed in proof_variants(proof, bit, flip(root, bit)):
        changes[name] = (leaf, index, size, changed, root)
    accepted = [name for name, args in changes.items() if not rejects(verify_inclusion, *args)]
    assert accepted == []


# ---------------------------------------------------------------------------------------------
# Consistency proofs.
# ---------------------------------------------------------------------------------------------


def go_consistency_probes(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> dict[str, tuple]:
    """The corruptions transparency-dev/merkle's verify_test.go applies to consistency proofs."""
    wrong = b"WrongRoot"
    probes: dict[str, tuple] = {
        "size1 - 1": (size1 - 1, size2, root1, root2, proof),
        "size1 + 1": (size1 + 1, size2, root1, root2, proof),
        "size1 ^ 2": (size1 ^ 2, size2, root1, root2, proof),
        "size2 * 2": (size1, size2 * 2, root1, root2, proof),
        "size2 / 2": (size1, size2 // 2, root1, root2, proof),
        "wrong root1": (size1, size2, wrong, root2, proof),
        "wrong root2": (size1, size2, root1, wrong, proof),
        "swapped roots": (size1, size2, root2, root1, proof),
        "empty proof": (size1, size2, root1, root2, []),
        "trailing garbage": (size1, size2, root1, root2, [*proof, b""]),
        "trailing root1": (size1, size2, root1, root2, [*proof, root1]),
        "trailing root2": (size1, size2, root1, root2, [*proof, root2]),
        "preceding garbage": (size1, size2, root1, root2, [b"", *proof]),
        "preceding root1": (size1, size2, root1, root2, [root1, *proof]),
        "preceding root2": (size1, size2, root1, root2, [root2, *proof]),
        "preceding proof[0]": (size1, size2, root1, root2, [proof[0], *proof]),
        "truncated proof": (size1, size2, root1, root2, proof[:-1]),
    }
    for i in range(len(proof)):
        changed = [*proof[:i], flip(proof[i], 4), *proof[i + 1 :]]
        probes[f"proof[{i}] bit 4"] = (size1, size2, root1, root2, changed)
    return probes


@pytest.mark.parametrize(("size1", "size2", "proof"), GO_CONSISTENCY_PROOFS)
def test_consistency_proof_matches_the_go_reference(
    size1: int, size2: int, proof: list[str]
) -> None:
    """consistency_proof reproduces each published proof and the proof verifies."""
    expected = _hashes(proof)
    assert consistency_proof(GO_LEAF_HASHES[:size2], size1) == expected
    verify_consistency(size1, size2, GO_ROOT_HASHES[size1], GO_ROOT_HASHES[size2], expected)


@pytest.mark.parametrize(("size1", "size2", "proof"), GO_CONSISTENCY_PROOFS[1:])
def test_consistency_rejects_the_go_corruptions(size1: int, size2: int, proof: list[str]) -> None:
    """Every corruption the Go test suite applies to a published proof is rejected."""
    probes = go_consistency_probes(
        size1, size2, GO_ROOT_HASHES[size1], GO_ROOT_HASHES[size2], _hashes(proof)
    )
    accepted = [name for name, args in probes.items() if not rejects(verify_consistency, *args)]
    assert accepted == []


def test_consistency_proof_matches_the_rfc_definition_for_small_trees() -> None:
    """consistency_proof equals the recursive RFC 9162 SUBPROOF for all sizes up to 64."""
    for new_size in range(1, 65):
        for old_size in range(1, new_size):
            expected = ref_subproof(old_size, LEAVES[:new_size], True)
            assert consistency_proof(LEAVES[:new_size], old_size) == expected


def test_every_tree_size_proves_consistency() -> None:
    """For every size up to 300 a few older sizes have verifying consistency proofs."""
    for new_size in range(1, MAX_SIZE + 1):
        for old_size in {0, 1, new_size // 2, new_size - 1, new_size}:
            proof = consistency_proof(LEAVES[:new_size], old_size)
            verify_consistency(old_size, new_size, tree_root(old_size), tree_root(new_size), proof)


@pytest.mark.parametrize("size", [0, 1, 2, 7, 8])
def test_same_size_needs_an_empty_proof_and_equal_roots(size: int) -> None:
    """A tree is consistent with itself only with an empty proof and the same root."""
    root = tree_root(size)
    assert consistency_proof(LEAVES[:size], size) == []
    verify_consistency(size, size, root, root, [])
    assert rejects(verify_consistency, size, size, root, GO_SOME_HASH, [])
    assert rejects(verify_consistency, size, size, root, root, [EMPTY_ROOT])


@pytest.mark.parametrize("new_size", [0, 1, 5, 8])
def test_the_empty_tree_is_consistent_with_every_tree(new_size: int) -> None:
    """Size 0 needs an empty proof and the empty root; the new root is not constrained."""
    assert consistency_proof(LEAVES[:new_size], 0) == []
    verify_consistency(0, new_size, EMPTY_ROOT, tree_root(new_size), [])
    assert rejects(verify_consistency, 0, new_size, GO_SOME_HASH, tree_root(new_size), [])
    assert rejects(verify_consistency, 0, new_size, EMPTY_ROOT, tree_root(new_size), [EMPTY_ROOT])


@pytest.mark.parametrize(("old_size", "new_size"), [(1, 0), (2, 1), (9, 8)])
def test_consistency_rejects_a_shrinking_tree(old_size: int, new_size: int) -> None:
    """An old size larger than the new size raises MerkleError."""
    with pytest.raises(MerkleError):
        consistency_proof(LEAVES[:new_size], old_size)
    with pytest.raises(MerkleError):
        verify_consistency(old_size, new_size, tree_root(old_size), tree_root(new_size), [])


def test_consistency_rejects_an_empty_proof_between_different_sizes() -> None:
    """Growing from 1 to 2 leaves needs a proof (Go's "empty proof" case)."""
    assert rejects(verify_consistency, 1, 2, tree_root(1), tree_root(2), [])


@pytest.mark.parametrize("bad", [-1, 2**64, 2.0, "2", None])
def test_consistency_rejects_a_size_that_is_not_a_u64(bad: object) -> None:
    """A negative, oversized or non-integer size raises MerkleError."""
    with pytest.raises(MerkleError):
        verify_consistency(bad, 3, tree_root(2), tree_root(3), [])  # type: ignore[arg-type]
    with pytest.raises(MerkleError):
        verify_consistency(2, bad, tree_root(2), tree_root(3), [])  # type: ignore[arg-type]
    with pytest.raises(MerkleError):
        consistency_proof_from(lambda start, end: b"", bad, 3)  # type: ignore[arg-type]


def test_consistency_rejects_hashes_of_the_wrong_length() -> None:
    """A root or proof element that is not 32 bytes raises MerkleError."""
    proof = consistency_proof(LEAVES[:7], 3)
    old, new = tree_root(3), tree_root(7)
    assert rejects(verify_consistency, 3, 7, old[:31], new, proof)
    assert rejects(verify_consistency, 3, 7, old, new + b"\x00", proof)
    assert rejects(verify_consistency, 3, 7, old, new, [*proof[:-1], proof[-1][:31]])


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int]:
    """A new tree size up to MAX_SIZE and an old size no larger."""
    new_size = draw(st.integers(0, MAX_SIZE))
    return draw(st.integers(0, new_size)), new_size


@settings(max_examples=400, deadline=None)
@given(case=consistency_cases(), bit=st.integers(0, 255), other=st.integers(0, MAX_SIZE))
def test_consistency_proofs_verify_and_fail_after_any_change(
    case: tuple[int, int], bit: int, other: int
) -> None:
    """A proof verifies, and no single change to sizes, roots or proof does."""
    old_size, new_size = case
    old_root, new_root = tree_root(old_size), tree_root(new_size)
    proof = consistency_proof(LEAVES[:new_size], old_size)
    assert proof == consistency_proof_from(subtree_of_leaves, old_size, new_size)
    verify_consistency(old_size, new_size, old_root, new_root, proof)
    changes: dict[str, tuple] = {
        "old root": (old_size, new_size, flip(old_root, bit), new_root, proof)
    }
    if old_size > 0 or new_size == 0:
        # Every tree extends the empty tree, so only then does the new root matter.
        changes["new root"] = (old_size, new_size, old_root, flip(new_root, bit), proof)
    for changed_old in {old_size - 1, old_size + 1, old_size ^ 2, other % (new_size + 1)}:
        if changed_old != old_size:
            changes[f"old size {changed_old}"] = (changed_old, new_size, old_root, new_root, proof)
    if old_size > 0:
        # As for inclusion, a changed new size is checked against its own true root.
        for changed_new in {new_size - 1, new_size + 1, new_size * 2, other}:
            if changed_new != new_size and 0 <= changed_new <= MAX_SIZE:
                args = (old_size, changed_new, old_root, tree_root(changed_new), proof)
                changes[f"new size {changed_new}"] = args
    for name, changed in proof_variants(proof, bit, flip(new_root, bit)):
        changes[name] = (old_size, new_size, old_root, new_root, changed)
    accepted = [name for name, args in changes.items() if not rejects(verify_consistency, *args)]
    assert accepted == []


def test_proofs_from_a_subtree_hasher_ask_only_for_ranges_inside_the_tree() -> None:
    """The *_from functions request ranges within the tree and match the list functions."""
    asked: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        asked.append((start, end))
        return root_hash(LEAVES[start:end])

    assert inclusion_proof_from(subtree, 100, 257) == inclusion_proof(LEAVES[:257], 100)
    assert consistency_proof_from(subtree, 100, 257) == consistency_proof(LEAVES[:257], 100)
    assert all(0 <= start < end <= 257 for start, end in asked)


# ---------------------------------------------------------------------------------------------
# Checkpoints.
# ---------------------------------------------------------------------------------------------

LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def verifier(key: Ed25519PrivateKey) -> Callable[[bytes, bytes], None]:
    """A verify callback for the public half of ``key``."""
    public = key.public_key()
    return lambda signature, message: public.verify(signature, message)


def make_checkpoint(**fields: object) -> Checkpoint:
    """A checkpoint of the property-test tree signed by LOG_KEY, fields overridable."""
    values: dict = {
        "log_id": "opseal-test",
        "size": 42,
        "root": tree_root(42),
        "timestamp": 1_750_000_000,
        **fields,
    }
    return Checkpoint.sign(sign=LOG_KEY.sign, **values)


SAMPLE_ENCODING = make_checkpoint().to_bytes()


def test_checkpoint_signature_verifies() -> None:
    """A checkpoint signed with the log key verifies under its public key."""
    checkpoint = make_checkpoint()
    checkpoint.verify(verifier(LOG_KEY))
    assert len(checkpoint.signature) == 64


def test_checkpoint_signs_the_documented_encoding() -> None:
    """The signature covers label, log id, size, root and timestamp in that order."""
    checkpoint = make_checkpoint()
    message = (
        Writer(label("checkpoint"))
        .text("opseal-test")
        .u64(42)
        .blob(tree_root(42))
        .u64(1_750_000_000)
        .finish()
    )
    assert checkpoint.signed_message() == message
    LOG_KEY.public_key().verify(checkpoint.signature, message)
    assert checkpoint.to_bytes() == message + struct.pack(">I", 64) + checkpoint.signature


def test_checkpoint_round_trips_through_bytes() -> None:
    """from_bytes of to_bytes gives an equal checkpoint that still verifies."""
    checkpoint = make_checkpoint(log_id="instance-ü", size=0, root=EMPTY_ROOT, timestamp=0)
    decoded = Checkpoint.from_bytes(checkpoint.to_bytes())
    assert decoded == checkpoint
    decoded.verify(verifier(LOG_KEY))


@pytest.mark.parametrize(
    "change",
    [
        {"log_id": "opseal-other"},
        {"size": 43},
        {"root": tree_root(43)},
        {"timestamp": 1_750_000_001},
        {"signature": flip(make_checkpoint().signature, 0)},
    ],
    ids=["log_id", "size", "root", "timestamp", "signature"],
)
def test_checkpoint_rejects_any_changed_field(change: dict) -> None:
    """Changing any field after signing makes verification raise MerkleError."""
    tampered = dataclasses.replace(make_checkpoint(), **change)
    with pytest.raises(MerkleError):
        tampered.verify(verifier(LOG_KEY))


def test_checkpoint_rejects_another_key() -> None:
    """A checkpoint does not verify under a key that did not sign it."""
    with pytest.raises(MerkleError):
        make_checkpoint().verify(verifier(OTHER_KEY))


def test_checkpoint_treats_a_false_result_as_failure() -> None:
    """A verify callback that returns False instead of raising still rejects."""
    with pytest.raises(MerkleError):
        make_checkpoint().verify(lambda signature, message: False)  # type: ignore[arg-type,return-value]


def test_checkpoint_rejects_a_signature_of_the_wrong_length() -> None:
    """A signing callback that returns other than 64 bytes raises MerkleError."""
    with pytest.raises(MerkleError):
        Checkpoint.sign("log", 1, tree_root(1), 0, lambda message: b"\x00" * 63)


@pytest.mark.parametrize(
    "change",
    [
        {"log_id": ""},
        {"log_id": "x" * 257},
        {"log_id": "\ud800"},
        {"log_id": b"log"},
        {"size": -1},
        {"size": 2**64},
        {"timestamp": -1},
        {"timestamp": 1.5},
        {"root": bytes(31)},
        {"root": bytearray(32)},
    ],
)
def test_checkpoint_rejects_invalid_fields(change: dict) -> None:
    """Signing or building a checkpoint with an invalid field raises MerkleError."""
    with pytest.raises(MerkleError):
        make_checkpoint(**change)
    with pytest.raises(MerkleError):
        dataclasses.replace(make_checkpoint(), **change)


def test_checkpoint_rejects_trailing_bytes() -> None:
    """Bytes after the signature raise DecodeError."""
    with pytest.raises(DecodeError, match="trailing"):
        Checkpoint.from_bytes(SAMPLE_ENCODING + b"\x00")


def test_checkpoint_rejects_every_truncation() -> None:
    """Every strict prefix of a valid encoding raises DecodeError."""
    for end in range(len(SAMPLE_ENCODING)):
        with pytest.raises(DecodeError):
            Checkpoint.from_bytes(SAMPLE_ENCODING[:end])


def test_checkpoint_rejects_another_label() -> None:
    """An encoding with another purpose label or protocol version is refused."""
    body = SAMPLE_ENCODING[len(Writer(label("checkpoint")).finish()) :]
    with pytest.raises(DecodeError, match="unexpected label"):
        Checkpoint.from_bytes(Writer(label("cert")).finish() + body)
    with pytest.raises(UnsupportedVersion):
        Checkpoint.from_bytes(Writer(b"opseal/v2/checkpoint").finish() + body)


def test_checkpoint_rejects_a_short_signature_field() -> None:
    """A 63-byte signature field raises DecodeError."""
    checkpoint = make_checkpoint()
    data = checkpoint.signed_message() + struct.pack(">I", 63) + checkpoint.signature[:63]
    with pytest.raises(DecodeError, match="signature"):
        Checkpoint.from_bytes(data)


def test_checkpoint_rejects_an_empty_log_id_on_decode() -> None:
    """An encoded empty log id raises DecodeError rather than MerkleError."""
    body = Writer(label("checkpoint")).text("").u64(1).blob(tree_root(1)).u64(0)
    with pytest.raises(DecodeError, match="log id"):
        Checkpoint.from_bytes(body.blob(bytes(64)).finish())


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Near-valid encodings: one byte changed, a slice cut out, or bytes inserted."""
    position = st.integers(0, len(data))
    return st.one_of(
        st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
            lambda pb: data[: pb[0]] + bytes([data[pb[0]] ^ pb[1]]) + data[pb[0] + 1 :]
        ),
        st.tuples(position, position).map(lambda ab: data[: min(ab)] + data[max(ab) :]),
        st.tuples(position, st.binary(min_size=1, max_size=8)).map(
            lambda pi: data[: pi[0]] + pi[1] + data[pi[0] :]
        ),
    )


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=400), mutations(SAMPLE_ENCODING)))
def test_checkpoint_decoding_round_trips_or_raises_a_crypto_error(data: bytes) -> None:
    """Arbitrary bytes decode to a checkpoint that re-encodes to them, or raise CryptoError."""
    try:
        checkpoint = Checkpoint.from_bytes(data)
    except CryptoError:
        return
    assert checkpoint.to_bytes() == data


def test_public_names_are_exported() -> None:
    """Every public function and class of the module is listed in __all__, and all exist."""
    defined = {
        name
        for name, obj in vars(merkle).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == merkle.__name__
    }
    assert defined <= set(merkle.__all__)
    assert all(hasattr(merkle, name) for name in merkle.__all__)
