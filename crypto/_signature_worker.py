"""The child process of :class:`~opseal.crypto.signature_worker.SignatureWorker`.

Run as ``python -m opseal.crypto._signature_worker``; it reads batches from stdin and answers
each with one verdict byte per item (1: libsodium accepts the signature), in order, until
stdin closes. A batch is ``count, size`` (two big-endian u32) then ``size`` bytes of items,
each a 32-byte public key, a 64-byte signature, a u32 length and the signed message.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

from opseal.crypto.keys import sodium_accepts

__all__ = ["main", "verdicts"]

BATCH = struct.Struct(">II")
ITEM = struct.Struct(">32s64sI")


def verdicts(count: int, items: bytes) -> bytes:
    """One byte per item of a batch: 1 if its signature verifies, else 0."""
    out = bytearray(count)
    view, pos = memoryview(items), 0
    for n in range(count):
        key, signature, size = ITEM.unpack_from(items, pos)
        pos += ITEM.size
        out[n] = sodium_accepts(signature, bytes(view[pos : pos + size]), key)
        pos += size
    if pos != len(items):
        raise ValueError("a batch of signatures with trailing bytes")
    return bytes(out)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (head := _read(stdin, BATCH.size)) is not None:
        count, size = BATCH.unpack(head)
        items = _read(stdin, size)
        if items is None:
            return
        stdout.write(BATCH.pack(count, count) + verdicts(count, items))
        stdout.flush()


if __name__ == "__main__":
    main()
