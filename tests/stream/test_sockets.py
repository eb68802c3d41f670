"""The pose stream's sockets (`stream/sockets.py`): what every publisher and subscriber of ours shares."""

import time

import pytest
import zmq
from support import ipv6_loopback

from wildpose.stream import schema, sockets


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def subscribed_pair(context, host: str, **subscriber_options) -> tuple[zmq.Socket, zmq.Socket]:
    publisher = sockets.publisher(context, send_hwm=100)
    port = publisher.bind_to_random_port(f"tcp://{host}")
    subscriber = sockets.subscriber(context, receive_hwm=100, **subscriber_options)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(f"tcp://{host}:{port}")
    assert publisher.poll(5000), "the subscription never reached the publisher"
    assert publisher.recv() == b"\x01"
    return publisher, subscriber


def receive(subscriber: zmq.Socket, seconds: float) -> list[bytes]:
    received = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subscriber.poll(50):
            received.append(subscriber.recv())
    return received


def test_publisher_and_subscriber_speak_ipv6_and_ipv4(context):
    hosts = ["127.0.0.1"] + (["[::1]"] if ipv6_loopback() else [])
    for host in hosts:
        publisher, subscriber = subscribed_pair(context, host)
        publisher.send(b"pose")
        assert subscriber.poll(5000) and subscriber.recv() == b"pose", host
    if len(hosts) == 1:
        pytest.skip("no IPv6 loopback (::1) on this machine; IPv4 passed")


def test_the_publisher_hears_a_repeated_subscription_so_each_subscriber_can_get_meta(context):
    publisher, first = subscribed_pair(context, "127.0.0.1")
    port = int(publisher.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
    second = sockets.subscriber(context, receive_hwm=100)
    second.setsockopt(zmq.SUBSCRIBE, b"")
    second.connect(f"tcp://127.0.0.1:{port}")
    assert publisher.poll(5000) and publisher.recv() == b"\x01"


def test_a_subscriber_takes_a_message_over_the_schema_limit_for_its_decoder_to_refuse(context):
    publisher, subscriber = subscribed_pair(context, "127.0.0.1")
    big = b"x" * (schema.MAX_MESSAGE_BYTES + 1)
    publisher.send(big)
    publisher.send(b"after")
    assert receive(subscriber, 1.0) == [big, b"after"]


def test_a_peer_over_the_transport_limit_is_cut_off_for_good(context):
    """Why the socket's own limit is far above the schema's: ZeroMQ does not reconnect after it."""
    publisher, subscriber = subscribed_pair(context, "127.0.0.1", max_message_bytes=1000)
    publisher.send(b"x" * 1001)
    assert publisher.poll(5000) and publisher.recv() == b"\x00"  # the subscriber left
    publisher.send(b"after")
    assert receive(subscriber, 1.0) == [] and not publisher.poll(500)  # and did not come back


def test_the_recorders_subscriber_keeps_a_message_of_any_size(context):
    publisher, subscriber = subscribed_pair(context, "127.0.0.1", max_message_bytes=None)
    big = b"x" * (schema.MAX_MESSAGE_BYTES + 1)
    publisher.send(big)
    assert receive(subscriber, 1.0) == [big]


def test_the_forwarder_passes_messages_down_and_subscriptions_up(context):
    upstream = sockets.publisher(context, send_hwm=100)
    upstream_port = upstream.bind_to_random_port("tcp://127.0.0.1")
    frontend, backend = sockets.forwarder(context, send_hwm=100)
    frontend.connect(f"tcp://127.0.0.1:{upstream_port}")
    backend_port = backend.bind_to_random_port("tcp://127.0.0.1")
    subscriber = sockets.subscriber(context, receive_hwm=100)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"pose/")
    subscriber.connect(f"tcp://127.0.0.1:{backend_port}")
    assert backend.poll(5000) and backend.recv() == b"\x01pose/"
    frontend.send(b"\x01pose/")  # what zmq.proxy does with it
    assert upstream.poll(5000) and upstream.recv() == b"\x01pose/"
    upstream.send(b"pose/cam")
    assert frontend.poll(5000)
    backend.send(frontend.recv())
    assert subscriber.poll(5000) and subscriber.recv() == b"pose/cam"
