"""The schema compiled into plain checks accepts a record exactly when jsonschema does."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opseal.client import content, report, schema
from opseal.client._demo_data import seizure_records

RECORDS = list(seizure_records("FR", 40, datetime.date(2026, 3, 1)))
TRICKY_TEXT = [
    "", " ", "\n", "DE", "DE\n", "de", "D", "DEU", "2026-02-30", "2026-02-28", "2026-02-28\n",
    "\uff12\uff10\uff12\uff16-01-01", "9999-99-99", "1234", "12345678901", "123a", "ipr",
    "postal", "\u00e9",
    "x" * 129, "x" * 257, "x" * 4097,
]  # fmt: skip
TRICKY = [*TRICKY_TEXT, -1, -0.5, 0, 1.0, True, float("nan"), float("inf"), 10**400, [], {}]
LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.sampled_from(TRICKY_TEXT) | st.text(max_size=8)
)  # fmt: skip
JSON = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = [*schema.SCHEMA["properties"], "unknown"]
LINE_FIELDS = [*schema.SCHEMA["$defs"]["goods_line"]["properties"], "unknown"]


def _edit(record: dict[str, Any], edit: tuple[int, str, str, Any]) -> None:
    kind, field, line_field, value = edit
    line = record["goods"][0] if isinstance(record.get("goods"), list) and record["goods"] else {}
    if kind == 0:
        record[field] = value
    elif kind == 1:
        record.pop(field, None)
    elif kind == 2 and isinstance(line, dict):
        line[line_field] = value
    elif kind == 3 and isinstance(line, dict):
        line.pop(line_field, None)
    elif kind == 4 and isinstance(record.get("goods"), list):
        record["goods"].append(value)


EDIT = st.tuples(
    st.integers(0, 4), st.sampled_from(FIELDS), st.sampled_from(LINE_FIELDS),
    st.sampled_from(TRICKY) | JSON,
)  # fmt: skip
EDITS = st.lists(EDIT, min_size=1, max_size=3)


def test_every_valid_record_takes_the_compiled_check():
    """Well-formed records are accepted without jsonschema (the fast path is in use)."""
    assert all(schema._quick_valid(record) for record in RECORDS)
    assert all(schema.problems(record) == [] for record in RECORDS)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(RECORDS), EDITS)
def test_the_compiled_check_agrees_with_jsonschema(record, edits):
    """An edited record (wrong types, missing or unknown fields, bad dates, codes and
    lengths) is accepted by the compiled check exactly when jsonschema accepts it, and a
    refused one keeps jsonschema's reasons."""
    record = copy.deepcopy(record)
    for edit in edits:
        _edit(record, edit)
    valid = schema._validator().is_valid(record)
    found = valid or list(schema._errors(record))
    assert schema._quick_valid(record) == valid
    assert (found is True) == valid


def test_a_schema_keyword_it_does_not_know_turns_the_compiled_check_off():
    """A keyword outside the few the compiler knows makes it leave every record to
    jsonschema rather than skip the keyword."""
    node = {"type": "object", "properties": {"a": {"type": "string", "oneOf": []}}}
    with pytest.raises(schema._Unsupported, match="oneOf"):
        schema._compile(node)


def test_an_integer_beyond_any_float_is_held_to_the_minimum_and_totals_without_failing():
    """A hostile member's JSON integers beyond any float: a negative item count is refused by
    ``minimum`` (which applies to numbers only: such an integer is one), naming the field;
    a weight of 10**400 or 1e30 kg is a number the schema allows, and the report totals it
    instead of failing as a whole."""
    record = copy.deepcopy(RECORDS[0])
    record["goods"][0]["quantity_items"] = -(10**400)
    assert not schema._quick_valid(record)
    [(field, reason)] = schema.problems(record)
    assert field == "goods[0].quantity_items"
    assert "minimum" in reason
    for weight in (10**400, 1e30):
        heavy = copy.deepcopy(RECORDS[0])
        heavy["goods"][0]["weight_kg"] = weight
        assert schema.problems(heavy) == []
        totals = report.aggregate([content.seizure(heavy)])["totals"]
        assert totals["weight_kg"] >= 1e30
