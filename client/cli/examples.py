"""Examples shown at the end of each command's ``--help`` (one table, so that the command
modules stay about what the commands do; ``tests/client/test_cli_help.py`` checks that every
command has some)."""

from __future__ import annotations

__all__ = ["EXAMPLES", "epilog"]

EXAMPLES: dict[str, tuple[str, ...]] = {
    "org keygen": ("opseal --profile fr-focal org keygen",),
    "enrol": (
        "opseal --profile fr-focal enrol --new-root --server https://opseal.example.org "
        "--code CODE --org fr-customs --user focal --device focal-laptop",
        "opseal --profile officer enrol request --server https://opseal.example.org "
        "--org fr-customs --user j.martin --device laptop --out request.json",
        "opseal --profile officer enrol complete answer.json",
    ),
    "org certify": (
        "opseal --profile fr-focal org certify request.json --fingerprint DIGITS --out answer.json",
    ),
    "device revoke": ("opseal --profile fr-focal device revoke fr-phone-2 --reason lost",),
    "whoami": ("opseal whoami", "opseal --json whoami"),
    "op list": ("opseal op list",),
    "op show": ("opseal op show op-stop-v",),
    "op create": (
        'opseal op create --id op-stop-v --code "STOP V" --name "Operation STOP V" '
        "--start 2025-05-12 --end 2025-05-30 --member fr-customs:customs:FR "
        "--member brandx:stakeholder",
        "opseal op create ... --area plan:coordinator,customs:coordinator:shared "
        "--area seizures:coordinator,customs:coordinator,customs:since-join:0:172800"
        "   # seizures keeps epoch secrets two days",
    ),
    "op join": (
        "opseal op join --invitation invitation.txt --fingerprint DIGITS_READ_OUT_BY_PHONE",
        "opseal op join op-stop-v --root-key=KEY_FROM_THE_INVITATION",
    ),
    "op add-member": (
        "opseal op add-member op-stop-v de-customs:customs:DE --out de-invitation.txt",
    ),
    "org enrol-code": (
        "opseal --profile fr-focal org enrol-code              # for an officer's device",
        "opseal --profile fr-focal org enrol-code --ttl-hours 24",
    ),
    "op charter": ("opseal op charter op-stop-v",),
    "op phase": (
        "opseal op phase op-stop-v active",
        "opseal op phase op-stop-v closed --yes        # in a script",
        "opseal op phase op-stop-v closed --force      # from active: skips follow-up",
    ),
    "admit": ("opseal admit", "opseal admit --watch --op op-stop-v"),
    "remove": ("opseal remove --op op-stop-v --device de-phone-2",),
    "agent start": (
        "opseal --profile national-system agent start --idle-timeout 8h",
        "opseal --profile national-system submit seizures op-stop-v export.csv  # no unlock",
    ),
    "agent status": ("opseal --profile national-system agent status",),
    "agent stop": ("opseal --profile national-system agent stop",),
    "rotate": ("opseal rotate --op op-stop-v", "opseal rotate --op op-stop-v --area seizures"),
    "post": ('opseal post op-stop-v seizures --text "40 fake watches" --handling H2',),
    "read": ("opseal read op-stop-v", "opseal read op-stop-v alerts --after 120"),
    "tail": ("opseal tail", "opseal --json tail --count 10"),
    "submit seizures": (
        "opseal submit seizures seizures.csv --op op-stop-v",
        "opseal submit seizures export.xlsx --op op-stop-v --sheet Data --handling H1",
        "opseal submit seizures export.csv --op op-stop-v --decimal-comma   # 12,5 kg",
        "opseal submit seizures seizures.csv --op op-stop-v --retry-for 600  # wait out an outage",
    ),
    "template seizures": (
        "opseal template seizures > seizures.csv",
        "opseal template seizures --format xlsx --output seizures.xlsx",
    ),
    "report": ("opseal report op-stop-v", "opseal report op-stop-v --format html --output r.html"),
    "export": (
        "opseal export op-stop-v --output records.csv",
        "opseal export op-stop-v --format json --include-personal --output records.json",
    ),
    "release": (
        "opseal release MESSAGE_ID --to stakeholders --dry-run",
        "opseal release MESSAGE_ID --to stakeholders --keep description",
    ),
    "permit-release": ("opseal permit-release MESSAGE_ID",),
    "attach": ('opseal attach op-stop-v plan Plan.pdf --title "Operational Plan" --requires-ack',),
    "download": (
        "opseal download MESSAGE_ID ~/Documents/",
        "opseal download MESSAGE_ID plan.pdf --clobber",
    ),
    "ack": ("opseal ack MESSAGE_ID",),
    "acks": ("opseal acks MESSAGE_ID",),
    "alert": (
        'opseal alert op-stop-v alerts --to de-customs --action "Inspect parcel CN123" '
        "--deadline 2025-05-20",
    ),
    "respond": ('opseal respond ALERT_ID --outcome "Parcel inspected: 40 watches seized"',),
    "audit verify": (
        "opseal audit verify",
        "opseal audit verify --accept-restore   # after the operator announced a restore",
    ),
    "audit log": (
        "opseal audit log --since 2025-05-12",
        "opseal --json audit log --kind login --kind phase-changed",
    ),
    "outbox": ("opseal outbox",),
    "sync": ("opseal sync", "opseal sync --retry-for 300"),
    "warnings": ("opseal warnings", "opseal --json warnings"),
    "web verify": (
        "opseal web verify https://opseal.example.org/",
        "opseal --json web verify https://intranet.customs.example/opseal/",
    ),
}
"""Example command lines by command name."""


def epilog(name: str) -> str | None:
    """The ``examples:`` block of command ``name``'s help (None without examples)."""
    lines = EXAMPLES.get(name)
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else None
