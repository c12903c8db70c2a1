"""Rendering for ``opseal``: human text or JSON on stdout, tables, times, messages and
integrity warnings as people and scripts see them."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .codes import REFUSED

if TYPE_CHECKING:
    from ..store import StoredMessage

WARNINGS_SHOWN = 20
"""Integrity warnings printed in full per command; the rest are counted."""
WarningRow = tuple[int, str, str, int | None, str, str]
"""A stored integrity warning: id, operation, area, sequence, kind, message."""


# -- output ---------------------------------------------------------------------------------
class Out:
    """Human text or JSON on stdout; notes and warnings on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.answered = False  # with --json, stdout holds one document: the answer or the error

    def result(self, data: Any, text: str | Iterable[str] = ()) -> None:
        """The command's answer: ``data`` as JSON, or ``text`` for people."""
        self.answered = True
        if self.json:
            print(json.dumps(data, indent=2, sort_keys=True, default=str), flush=True)
            return
        lines = [text] if isinstance(text, str) else list(text)
        for line in lines:
            print(line, flush=True)

    def line(self, data: Any, text: str) -> None:
        """One item of a stream (``tail``, ``admit --watch``): a JSON line or a text line."""
        print(json.dumps(data, sort_keys=True, default=str) if self.json else text, flush=True)

    def fail(self, message: str, hint: str, code: int = REFUSED) -> None:
        """The one-line report of a failure (and, with --json and no answer yet, its JSON)."""
        print(f"opseal: {message}; {hint}", file=sys.stderr, flush=True)
        if self.json and not self.answered:
            error = {"exit_code": code, "message": message, "hint": hint}
            print(json.dumps({"error": error}), flush=True)

    def note(self, text: str) -> None:
        if not self.json:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"opseal: warning: {text}", file=sys.stderr, flush=True)

    def warnings(self, warnings: Sequence[WarningRow]) -> None:
        """Integrity warnings, the first :data:`WARNINGS_SHOWN` in full, then a count by kind."""
        for w in warnings[:WARNINGS_SHOWN]:
            self.warn(warning_text(w))
        rest = warnings[WARNINGS_SHOWN:]
        if rest:
            kinds = Counter(w[4] for w in rest)
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            self.warn(f"... and {len(rest)} more ({counts}); `opseal --json read OP` lists them")

    def progress(self, total: int | None, what: str, unit: str = "it") -> Any:
        """A progress bar on stderr (hidden when stderr is not a terminal, or with --json)."""
        from tqdm import tqdm

        return tqdm(
            total=total,
            desc=what,
            unit=unit,
            unit_scale=unit == "B",
            file=sys.stderr,
            disable=True if self.json else None,
            leave=False,
        )


def when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> list[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def message_json(m: StoredMessage) -> dict[str, Any]:
    try:
        content = m.json()
    except ValueError:
        content = m.plaintext.decode(errors="replace")
    return {
        "operation_id": m.op,
        "area": m.area,
        "seq": m.seq,
        "message_id": m.message_id,
        "sender": m.sender,
        "org": m.org,
        "epoch": m.epoch,
        "content_type": m.content_type,
        "handling": m.handling,
        "requires_ack": m.requires_ack,
        "client_time": m.client_time_ms / 1000,
        "content": redacted(content),
    }


def redacted(content: Any) -> Any:
    """``content`` with attachment file keys hidden: output may end up in logs, and
    `opseal download` reads the keys from the verified message itself."""
    if not isinstance(content, dict) or not isinstance(content.get("attachments"), list):
        return content
    hidden = [
        {**a, "file_key": "***"} if isinstance(a, dict) else a for a in content["attachments"]
    ]
    return {**content, "attachments": hidden}


def warning_text(w: WarningRow) -> str:
    _id, op, area, seq, kind, message = w
    return f"{op}/{area or '-'} #{seq or '-'} {kind}: {message}"


def warning_json(w: WarningRow) -> dict[str, Any]:
    return dict(zip(("id", "operation_id", "area", "seq", "kind", "message"), w, strict=True))


def message_text(m: StoredMessage) -> str:
    flags = " ".join(f for f in (m.handling, "ack-requested" if m.requires_ack else "") if f)
    head = f"[{m.area} #{m.seq}] {when(m.client_time_ms / 1000)} {m.org}/{m.sender} {flags}"
    return f"{head}\n  {m.content_type}: {summary(m)}\n  id {m.message_id}"


def summary(m: StoredMessage) -> str:
    """One line for people about a message's content."""
    try:
        c = m.json()
    except ValueError:
        return "(not JSON)"
    if not isinstance(c, dict):
        return json.dumps(c)
    if m.content_type == "text":
        return str(c.get("text", ""))
    if m.content_type == "release" and isinstance(c.get("record"), dict):
        c = c["record"]
    if m.content_type in ("seizure", "release"):
        goods = ", ".join(str(g.get("category")) for g in c.get("goods", []) if isinstance(g, dict))
        where = f"{c.get('reporting_country')} {c.get('seizure_date')}"
        return f"record {c.get('record_id')}, case {c.get('case_ref')}, {where}: {goods}"
    if m.content_type == "document":
        names = ", ".join(str(f.get("file_name")) for f in c.get("attachments") or [])
        return f"{c.get('title', '(untitled)')} [{names}]"
    if m.content_type == "alert":
        targets = ", ".join(c.get("targets", []))
        return f"to {targets}: {c.get('action')} (deadline {c.get('deadline') or 'none'})"
    if m.content_type == "alert-response":
        return f"on alert {c.get('alert_id')}: {c.get('outcome')}"
    return json.dumps(c, sort_keys=True)
