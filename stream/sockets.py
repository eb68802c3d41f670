"""The ZeroMQ sockets of the pose stream, made one way everywhere.

Every publisher (a pipeline, a replay), every subscriber (the client library, the browser viewer, the
recorder) and both sides of the proxy open their sockets here, so they all speak IPv6 as well as IPv4
(`tcp://[::1]:PORT`) and bound their queues the same way.
"""

from __future__ import annotations

import zmq

from wildpose.stream import schema


def _dual_stack(socket: zmq.Socket) -> zmq.Socket:
    socket.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT too; IPv4 endpoints still work
    return socket


_PUBLISHER_LINGER_MS = 1000  # on close, how long queued messages may still go out


def publisher(context: zmq.Context, send_hwm: int, *, no_drop: bool = False) -> zmq.Socket:
    """An XPUB socket that hears every subscription, repeated ones too, so each new subscriber can be
    sent the stream's meta. `no_drop` blocks at `send_hwm` rather than dropping (a replay run as fast
    as possible must never outrun its subscribers)."""
    socket = _dual_stack(context.socket(zmq.XPUB))
    socket.setsockopt(zmq.SNDHWM, send_hwm)
    socket.setsockopt(zmq.XPUB_VERBOSE, 1)
    socket.setsockopt(zmq.LINGER, _PUBLISHER_LINGER_MS)
    if no_drop:
        socket.setsockopt(zmq.XPUB_NODROP, 1)
    return socket


# ZeroMQ cuts off a peer that sends a message over a socket's MAXMSGSIZE, and treats it as a protocol
# error: it does not reconnect, so the subscriber would hear nothing more from that publisher. The
# schema's limit is therefore checked per message by whoever decodes (skipped and counted, the stream
# goes on), and the socket's own limit only keeps a hostile peer from filling memory.
_TRANSPORT_LIMIT_BYTES = 16 * schema.MAX_MESSAGE_BYTES


def subscriber(context: zmq.Context, receive_hwm: int, *,
               max_message_bytes: int | None = _TRANSPORT_LIMIT_BYTES) -> zmq.Socket:
    """A SUB socket that drops what is queued when closed. A peer that sends a message over
    `max_message_bytes` is cut off for good; None accepts any size (the recorder keeps whatever it is sent)."""
    socket = _dual_stack(context.socket(zmq.SUB))
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, receive_hwm)
    if max_message_bytes is not None:
        socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    return socket


def forwarder(context: zmq.Context, send_hwm: int) -> tuple[zmq.Socket, zmq.Socket]:
    """The proxy's pair: an XSUB that connects to the pipelines and an XPUB for the subscribers, which
    passes every subscription up so each pipeline sends its meta to each new subscriber."""
    return _dual_stack(context.socket(zmq.XSUB)), publisher(context, send_hwm)
