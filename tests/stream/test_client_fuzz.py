"""The client against hostile input: random bytes, random msgpack, and valid messages with any field
replaced by anything. Every outcome is a typed message or a `SchemaError`, never another exception."""

from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wildpose.stream import schema
from wildpose.stream.client import FrameMessage, MetaMessage, PoseMessage, SchemaError, StatsMessage, decode

TOPICS = st.sampled_from([b"pose/cam", b"stats/cam", b"meta", b"frame/cam", b"pose/", b"other", b"\xff\xfe"])
# anything msgpack can carry: nil, bools, integers up to 64 bits, floats (nan and inf too), text, bytes,
# lists and maps, nested
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
           | st.binary(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=20)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_messages() -> dict[bytes, dict]:
    person = schema.person(3, [1.0, 2.0, 30.0, 40.0], 0.9, np.zeros((16, 2)), np.zeros((16, 3)), np.full(16, 0.5),
                           True)
    return {
        b"pose/cam": schema.pose("cam", 5, 100.0, 100.02, (640, 480), [person]),
        b"meta": schema.meta({"weights": "w"}, {"cam": {"source": "x", "kind": "file"}}, "prior",
                             {"hz": 5.0, "width": 320}),
        b"stats/cam": {"v": 1, "stream": "cam", "t": 1.0, "interval_s": 1.0, "fps": {}, "latency_ms": {},
                       "drops": {}, "queues": {}, "totals": {}},
        b"frame/cam": schema.frame("cam", 5, 100.0, (640, 480), (320, 240), b"\xff\xd8\xff\xe0jpeg"),
    }


def decodes_or_refuses(topic: bytes, payload: bytes) -> None:
    try:
        message = decode(topic, payload)
    except SchemaError:
        return
    assert isinstance(message, (PoseMessage, StatsMessage, MetaMessage, FrameMessage))


@FUZZ
@given(topic=TOPICS, payload=st.binary(max_size=200))
def test_random_bytes_are_refused_or_decoded(topic, payload):
    decodes_or_refuses(topic, payload)


@FUZZ
@given(topic=TOPICS, value=VALUES)
def test_random_msgpack_is_refused_or_decoded(topic, value):
    decodes_or_refuses(topic, msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(topic=st.sampled_from(list(valid_messages())), data=st.data())
def test_any_field_of_a_valid_message_replaced_by_anything_is_refused_or_decoded(topic, data):
    message = valid_messages()[topic]
    field = data.draw(st.sampled_from(sorted(message)))
    message[field] = data.draw(VALUES)
    decodes_or_refuses(topic, msgpack.packb(message, use_bin_type=True))


@FUZZ
@given(field=st.sampled_from([*schema.PERSON_FIELDS, "root_cam", "joints3d_cam"]), value=VALUES)
def test_any_field_of_a_person_replaced_by_anything_is_refused_or_decoded(field, value):
    message = valid_messages()[b"pose/cam"]
    message["people"][0][field] = value
    decodes_or_refuses(b"pose/cam", msgpack.packb(message, use_bin_type=True))


def test_every_valid_message_decodes():
    for topic, message in valid_messages().items():
        assert not isinstance(decode(topic, schema.pack(message)), SchemaError)
