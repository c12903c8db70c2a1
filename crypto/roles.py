"""The words of a charter's policy: member roles and area history policies.

Apart from :mod:`.charter`, so that the command line can offer them as choices without loading
the key code (``opseal --help`` stays fast).
"""

from __future__ import annotations

__all__ = ["HISTORY_POLICIES", "ROLES"]

ROLES = ("coordinator", "customs", "partner", "stakeholder", "observer")
HISTORY_POLICIES = ("shared", "since-join")
