"""Decoding through the wire types: strict, limited, and failures that name the field."""

from __future__ import annotations

import msgspec
import pytest

from opseal.server.http.stream import _frame, encode_event
from opseal.wire.audit import InclusionQuery
from opseal.wire.decode import WireError, decode_body, decode_query
from opseal.wire.identity import ChallengeRequest, EnrolRequest
from opseal.wire.operations import Event, EventsQuery, MessageBatch, PhaseRequest, Stored
from opseal.wire.stream import StreamEvent, StreamIdle, StreamMessage

EVENT = {
    "operation_id": "op-stop-v",
    "area": "seizures",
    "seq": 3,
    "kind": "message",
    "device_id": "customs-device",
    "epoch": 1,
    "message_id": "0b7a4c1e-5d2f-4f7e-9a51-3c2b1a0f9e8d",
    "body": "AAAA",
    "created_at": 1700000000,
}


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b'{"envelopes": "AAAA"}', "envelopes", "expected a list"),
        (b'{"envelopes": []}', "envelopes", "at least 1"),
        (b'{"envelopes": [7]}', "envelopes", "base64url"),
        (b"{}", "envelopes", "required"),
    ],
)
def test_a_bad_field_is_named_with_what_was_expected(raw, field, words):
    """A body that does not fit its type raises a WireError naming the field and expectation."""
    with pytest.raises(WireError) as refused:
        decode_body(raw, MessageBatch)
    assert refused.value.field == field
    assert f"'{field}" in refused.value.message
    assert words in refused.value.message


def test_limits_of_the_type_are_enforced():
    """Length limits, enums and integer ranges from the Meta constraints refuse bad values."""
    with pytest.raises(WireError, match="'device_id': expected a string of 1-128"):
        decode_body(b'{"device_id": "%s"}' % (b"x" * 129), ChallengeRequest)
    with pytest.raises(WireError, match="'phase': expected one of active, archived"):
        decode_body(b'{"phase": "finished"}', PhaseRequest)
    with pytest.raises(WireError, match="'limit': expected an integer from 1 to 5000"):
        decode_query({"limit": "0"}, EventsQuery)


def test_query_integers_are_parsed_and_required_ones_named():
    """Query text becomes integers, defaults apply, and a missing required parameter is named."""
    assert decode_query({"after": "7"}, EventsQuery) == EventsQuery(after=7, limit=500)
    with pytest.raises(WireError, match="query 'size': required"):
        decode_query({"index": "1"}, InclusionQuery)


def test_requests_ignore_unknown_fields_and_responses_refuse_them():
    """A request may carry fields it does not need; an answer with an extra field is refused."""
    request = decode_body(b'{"device_id": "d", "padding": "x"}', ChallengeRequest)
    assert request.device_id == "d"
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        msgspec.json.decode(b'{"seq": 1, "extra": 2}', type=Stored)
    with pytest.raises(msgspec.ValidationError, match="missing required field `seq`"):
        msgspec.json.decode(b"{}", type=Stored)


def test_request_base64_is_documented_and_answer_base64_is_checked():
    """Request byte fields document the base64url pattern; answers are checked against it."""
    schema = msgspec.json.schema(MessageBatch)["$defs"]["MessageBatch"]
    assert schema["properties"]["envelopes"]["items"]["pattern"] == "^[A-Za-z0-9_-]*$"
    with pytest.raises(msgspec.ValidationError, match="body"):
        msgspec.convert({**EVENT, "body": "AA+A"}, Event)


def test_optional_fields_default_and_nul_is_refused():
    """An absent optional field gets its default; text holding NUL is refused by name."""
    body = b'{"code": "c", "user_certificate": "", "device_certificate": ""}'
    assert decode_body(body, EnrolRequest).root_key is None
    with pytest.raises(WireError, match="'device_id': NUL"):
        decode_body(b'{"device_id": "a\\u0000b"}', ChallengeRequest)


def test_malformed_and_non_object_bodies_say_so():
    """Malformed JSON, an array body and unpaired surrogates each get their own message."""
    with pytest.raises(WireError, match="malformed JSON"):
        decode_body(b'{"device_id": "x"', ChallengeRequest)
    with pytest.raises(WireError, match="malformed JSON"):
        decode_body(b"[" * 10_000, ChallengeRequest)
    with pytest.raises(WireError, match="JSON object"):
        decode_body(b'["x"]', ChallengeRequest)
    with pytest.raises(WireError, match="surrogate"):
        decode_body(b'{"device_id": "a\\ud800"}', ChallengeRequest)


def test_stream_frames_decode_as_stream_messages():
    """The hub's hand-assembled event frame and an idle message decode as their wire types."""
    frame = _frame(encode_event(EVENT), "Y3Vyc29y")
    message = msgspec.json.decode(frame, type=StreamMessage)
    assert message == StreamEvent(event=msgspec.convert(EVENT, Event), cursor="Y3Vyc29y")
    idle = msgspec.json.encode(StreamIdle(cursor=""))
    assert msgspec.json.decode(idle, type=StreamMessage) == StreamIdle(cursor="")


def test_an_event_that_breaks_the_contract_is_not_encoded():
    """The server refuses to send an entry whose fields break the Event type."""
    with pytest.raises(msgspec.ValidationError, match="kind"):
        encode_event({**EVENT, "kind": "gossip"})
