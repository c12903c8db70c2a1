"""The current charter version of each operation, as this process last read it (design §15,
"Read rights removed by a charter version").

The stream hub compares every subscriber's charter versions with the current ones before each
delivery; reading them from the database per delivery cost the fan-out about 12 %, so they are
cached here, and the cache never serves a version older than the database's to a delivery of
an entry stored after the new version on this process:

- :meth:`CharterVersions.changing` is called inside the publishing transaction, *before* its
  commit; until :meth:`CharterVersions.settled` (after the commit or rollback) the operation is
  not cached and every look-up reads the database;
- a value read from the database is remembered only if no change of the operation began
  meanwhile (:meth:`generation`), so a read racing a publication cannot cache the old version.

Other nodes learn of a new version through the bus (:meth:`CharterVersions.forget` on a
``charter`` event) and the hub's periodic poll; see :mod:`opseal.server.http.stream`.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["CharterVersions"]


class CharterVersions:
    """Cached current charter versions by operation; see the module docstring."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}
        self._changing: Counter[str] = Counter()
        self._generations: Counter[str] = Counter()

    def get(self, operation_id: str) -> int | None:
        """The cached current version, or None when it must be read from the database."""
        if self._changing[operation_id]:
            return None
        return self._known.get(operation_id)

    def generation(self, operation_id: str) -> int:
        """Changes begun so far: take it before a database read, give it to :meth:`remember`."""
        return self._generations[operation_id]

    def remember(self, operation_id: str, version: int, generation: int) -> None:
        """Cache ``version`` read from the database, unless a change began since ``generation``."""
        if not self._changing[operation_id] and self._generations[operation_id] == generation:
            self._known[operation_id] = version

    def forget(self, operation_id: str) -> None:
        """A new version exists (another node's, or seen by the poll): read it again."""
        self._generations[operation_id] += 1
        self._known.pop(operation_id, None)

    def changing(self, operation_id: str) -> None:
        """A transaction of this process is about to commit a new version."""
        self.forget(operation_id)
        self._changing[operation_id] += 1

    def settled(self, operation_id: str) -> None:
        """That transaction committed or rolled back."""
        self._changing[operation_id] -= 1
        if self._changing[operation_id] <= 0:
            del self._changing[operation_id]
        self.forget(operation_id)

    def known(self) -> dict[str, int]:
        """The cached versions (for the poll's comparison with the database)."""
        return dict(self._known)
