"""The invitation to an operation, as one block a coordinator sends and a member pastes
(design §3, issue 13).

``opseal op create`` and ``opseal op add-member`` print it; ``opseal op join --invitation``
reads it from a file, a pasted block or a whole forwarded e-mail (quoting ``>`` is ignored).
It carries the coordinator organisation's root key *and* its fingerprint: a block whose key
does not give its fingerprint is refused (mistyped or altered), and the fingerprint is what
the member compares with the one the coordinator gives by a second channel (phone, letter).
"""

from __future__ import annotations

from dataclasses import dataclass

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey

__all__ = ["BEGIN", "END", "Invitation", "InvitationError", "same_fingerprint"]

BEGIN = "-----BEGIN OPSEAL INVITATION-----"
END = "-----END OPSEAL INVITATION-----"
_FIELDS = ("operation", "code", "name", "member", "coordinator", "server", "instance",
           "root-key", "fingerprint")  # fmt: skip
_REQUIRED = ("operation", "coordinator", "server", "instance", "root-key", "fingerprint")


class InvitationError(ValueError):
    """The text holds no usable invitation; the message says what is wrong."""


def same_fingerprint(a: str, b: str) -> bool:
    """Fingerprints compare by their digits only (spaces and dashes as people write them)."""
    return [c for c in a if c.isdigit()] == [c for c in b if c.isdigit()] != []


@dataclass(frozen=True)
class Invitation:
    """Everything a member needs to join an operation and check whom it trusts."""

    operation_id: str
    code: str
    name: str
    coordinator: str
    server: str
    instance_id: str
    root_key: VerifyKey
    member: str = ""  # "ORG (ROLE)" when the invitation is for one organisation

    @property
    def fingerprint(self) -> str:
        return self.root_key.fingerprint

    def block(self) -> str:
        """The text to send: one ``key: value`` per line between the markers."""
        values = {
            "operation": self.operation_id, "code": self.code, "name": self.name,
            "member": self.member, "coordinator": self.coordinator, "server": self.server,
            "instance": self.instance_id, "root-key": b64e(self.root_key.raw),
            "fingerprint": self.fingerprint,
        }  # fmt: skip
        lines = [f"{key}: {values[key]}" for key in _FIELDS if values[key]]
        return "\n".join([BEGIN, *lines, END]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Invitation:
        """The invitation in ``text``; :class:`InvitationError` if there is none, a field is
        missing, or its root key does not give its fingerprint."""
        fields = _fields(text)
        missing = [key for key in _REQUIRED if not fields.get(key)]
        if missing:
            raise InvitationError(f"the invitation lacks {', '.join(missing)}")
        try:
            root = VerifyKey(b64d(fields["root-key"], field="root-key"))
        except CryptoError as exc:
            raise InvitationError(f"the invitation's root key is not a key: {exc}") from exc
        if not same_fingerprint(root.fingerprint, fields["fingerprint"]):
            raise InvitationError(
                "the invitation's root key does not match its fingerprint: it was altered or "
                "mistyped"
            )
        return cls(
            fields["operation"], fields.get("code", ""), fields.get("name", ""),
            fields["coordinator"], fields["server"], fields["instance"], root,
            fields.get("member", ""),
        )  # fmt: skip


def _fields(text: str) -> dict[str, str]:
    lines = [line.lstrip("> \t").rstrip() for line in text.splitlines()]
    if BEGIN not in lines or END not in lines[lines.index(BEGIN) :]:
        raise InvitationError(f"no invitation found (a block between {BEGIN} and {END})")
    start = lines.index(BEGIN)
    body = lines[start + 1 : lines.index(END, start)]
    fields: dict[str, str] = {}
    for line in body:
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in _FIELDS:
            raise InvitationError(f"the invitation has an unexpected line: {line[:60]!r}")
        fields[key.strip()] = value.strip()
    return fields
