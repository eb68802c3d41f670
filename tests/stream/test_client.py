"""The client library: typed messages, schema checks, stream filters and gap counting, over real sockets."""

import math

import msgpack
import numpy as np
import pytest
import zmq
from support import free_port

from wildpose.stream import schema
from wildpose.stream.client import MetaMessage, PoseMessage, PoseSubscriber, SchemaError, decode


def a_person(**changes):
    values = schema.person(3, [1.0, 2.0, 30.0, 40.0], 0.9, np.zeros((16, 2)), np.zeros((16, 3)),
                           np.full(16, 0.5), True)
    values.update(changes)
    return values


def a_pose(**changes):
    values = schema.pose("cam", 5, 100.0, 100.02, (640, 480), [a_person()])
    values.update(changes)
    return values


def test_a_valid_pose_decodes_to_typed_values():
    message = decode(b"pose/cam", schema.pack(a_pose()))
    assert isinstance(message, PoseMessage) and message.seq == 5 and message.size == (640, 480)
    (person,) = message.people
    assert person.id == 3 and person.joints3d.shape == (16, 3) and person.tracked
    assert message.latency_s == pytest.approx(0.02)


def test_meta_decodes_with_the_joint_set():
    payload = schema.pack(schema.meta({"weights": "w"}, {"cam": {"source": "x", "kind": "file"}}, "prior"))
    message = decode(b"meta", payload)
    assert isinstance(message, MetaMessage) and message.joints[6] == "pelvis" and message.root == 6


@pytest.mark.parametrize("payload, message", [
    (schema.pack(a_pose(v=2)), "schema version 2 is not supported"),
    (schema.pack({k: v for k, v in a_pose().items() if k != "seq"}), r"lacks fields \['seq'\]"),
    (schema.pack(a_pose(people=[a_person(joints3d=[[0, 0, 0]] * 15)])), "joints3d must be finite numbers of shape"),
    (schema.pack(a_pose(people=[a_person(conf=[math.nan] * 16)])), "conf must be finite"),
    (schema.pack(a_pose(t_capture="yesterday")), "t_capture must be a finite number"),
    (schema.pack(a_pose(people="nobody")), "people must be a list"),
    (schema.pack([1, 2, 3]), "is not a map"),
    (b"\xc1\xc1\xc1", "undecodable message"),
    (msgpack.packb({1: 2}), "undecodable message"),
    (b"\x00" * (schema.MAX_MESSAGE_BYTES + 1), "exceeds"),
])
def test_malformed_messages_are_refused_with_the_reason(payload, message):
    with pytest.raises(SchemaError, match=message):
        decode(b"pose/cam", payload)


def test_unknown_topics_are_refused():
    with pytest.raises(SchemaError, match="unknown topic"):
        decode(b"weather/today", schema.pack(a_pose()))


@pytest.fixture()
def publisher():
    context = zmq.Context()
    socket = context.socket(zmq.XPUB)
    socket.setsockopt(zmq.LINGER, 0)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    socket.bind(endpoint)
    yield socket, endpoint
    socket.close(linger=0)
    context.term()


def wait_for_subscriptions(socket, count):
    for _ in range(count):
        assert socket.poll(5000), "no subscription arrived"
        socket.recv()


def test_a_stream_filter_matches_the_whole_id_not_a_prefix(publisher):
    socket, endpoint = publisher
    with PoseSubscriber(endpoint, streams=["cam1"], topics=["pose"]) as subscriber:
        wait_for_subscriptions(socket, 1)
        for stream in ("cam10", "cam1"):
            socket.send_multipart([f"pose/{stream}".encode(), schema.pack(a_pose(stream=stream))])
        message = subscriber.recv(timeout=5)
    assert message.stream == "cam1"


def test_gaps_in_frame_numbers_are_counted_and_bad_messages_skipped(publisher):
    socket, endpoint = publisher
    with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
        wait_for_subscriptions(socket, 1)
        for seq in (0, 1, 4):
            socket.send_multipart([b"pose/cam", schema.pack(a_pose(seq=seq))])
            socket.send_multipart([b"pose/cam", b"garbage"])
        seqs = [subscriber.recv(timeout=5).seq for _ in range(3)]
    assert seqs == [0, 1, 4] and subscriber.missed == {"cam": 2}
    assert subscriber.invalid == 2  # the garbage after seq 4 is not read yet


def test_a_message_over_the_limit_is_skipped_and_the_stream_goes_on(publisher):
    """ZeroMQ would cut the publisher off for good at its own message limit; the client checks the
    schema's limit itself, so one oversized message costs that message only."""
    socket, endpoint = publisher
    with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
        wait_for_subscriptions(socket, 1)
        socket.send_multipart([b"pose/cam", b"\x00" * (schema.MAX_MESSAGE_BYTES + 1)])
        socket.send_multipart([b"pose/cam", schema.pack(a_pose(seq=6))])
        message = subscriber.recv(timeout=5)
    assert message.seq == 6 and subscriber.invalid == 1  # the oversized one was skipped


def test_strict_mode_raises_on_a_bad_message(publisher):
    socket, endpoint = publisher
    with PoseSubscriber(endpoint, topics=["pose"], strict=True) as subscriber:
        wait_for_subscriptions(socket, 1)
        socket.send_multipart([b"pose/cam", b"garbage"])
        with pytest.raises(SchemaError):
            subscriber.recv(timeout=5)


def test_one_subscriber_reads_many_publishers(publisher):
    socket, endpoint = publisher
    context = zmq.Context.instance()
    second = context.socket(zmq.XPUB)
    second_endpoint = f"tcp://127.0.0.1:{free_port()}"
    second.bind(second_endpoint)
    try:
        with PoseSubscriber([endpoint, second_endpoint], topics=["pose"]) as subscriber:
            wait_for_subscriptions(socket, 1)
            wait_for_subscriptions(second, 1)
            socket.send_multipart([b"pose/a", schema.pack(a_pose(stream="a"))])
            second.send_multipart([b"pose/b", schema.pack(a_pose(stream="b"))])
            streams = {subscriber.recv(timeout=5).stream for _ in range(2)}
    finally:
        second.close(linger=0)
    assert streams == {"a", "b"}
