"""`wildpose proxy`: one endpoint for the poses of many pipelines, with ZeroMQ's own forwarder.

An XSUB socket connects to every pipeline's publisher and an XPUB socket binds for subscribers;
`zmq.proxy` moves messages down and subscriptions up. Subscriptions are forwarded verbosely (each,
also a repeated one), so every new subscriber that asks for `meta` makes each pipeline send its meta
again, exactly as when connected directly. ZeroMQ reconnects to a pipeline that starts late or
restarts. Stream ids must be unique across the fleet: start each pipeline with `--name`, which
prefixes its stream ids (`lobby.cam0`). Both sides speak CURVE when asked: the upstream side as a
client of encrypted pipelines, the subscriber side as an encrypted, access-controlled publisher.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time

import zmq
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from wildpose import __version__
from wildpose.errors import ConfigError, PipelineError, WildPoseError
from wildpose.stream import auth, sockets

log = logging.getLogger(__name__)

_CAPTURE = "inproc://wildpose-proxy-capture"
_CAPTURE_POLL_MS = 200


class ProxyCounts:
    """What passed through the proxy, per topic and stream, for `--metrics` (`stream/health.py`).

    `zmq.proxy` copies every message to a capture socket; a thread of its own counts them there. The
    capture is a PUB socket, so a counter that falls behind loses counts, never slows the proxy.
    """

    def __init__(self, context: zmq.Context, upstreams: list[str], bind: str) -> None:
        self.upstreams, self.bind = upstreams, bind
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.messages: collections.Counter = collections.Counter()  # (topic kind, stream) -> messages
        self.last: dict[str, float] = {}  # stream -> monotonic time of its last message
        self.subscriptions = collections.Counter()  # subscribe, unsubscribe -> events from subscribers
        self.running = False
        self.stop = threading.Event()
        self.reader = context.socket(zmq.SUB)
        self.reader.setsockopt(zmq.SUBSCRIBE, b"")
        self.reader.connect(_CAPTURE)
        self.thread = threading.Thread(target=self._count, name="proxy-counts", daemon=True)
        self.thread.start()

    def _count(self) -> None:
        while not self.stop.is_set():
            if not self.reader.poll(_CAPTURE_POLL_MS):
                continue
            frames = self.reader.recv_multipart()
            first = frames[0]
            with self.lock:
                if len(frames) == 1 and first[:1] in (b"\x00", b"\x01"):  # a subscriber's (un)subscription
                    self.subscriptions["subscribe" if first[:1] == b"\x01" else "unsubscribe"] += 1
                    continue
                kind, _, stream = first.decode("utf-8", "replace").partition("/")
                self.messages[(kind, stream)] += 1
                if stream:
                    self.last[stream] = time.monotonic()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.reader.close(linger=0)

    def alive(self) -> tuple[bool, str]:
        return (True, "alive") if self.thread.is_alive() else (False, "the proxy's counting thread has stopped")

    def ready(self) -> tuple[bool, str]:
        return (True, f"ready: forwarding to {self.bind}") if self.running else (False, "not ready: starting")

    def status(self) -> dict:
        with self.lock:
            now = time.monotonic()
            streams: dict[str, dict] = {}
            for (kind, stream), count in sorted(self.messages.items()):
                if stream:
                    entry = streams.setdefault(stream, {"messages": {}, "last_message_age_s": None})
                    entry["messages"][kind] = count
                    entry["last_message_age_s"] = round(now - self.last[stream], 3)
            return {"upstreams": self.upstreams, "bind": self.bind, "version": __version__,
                    "uptime_s": round(now - self.started, 3), "subscriptions": dict(self.subscriptions),
                    "streams": streams}

    def collect(self):
        with self.lock:
            now = time.monotonic()
            messages, last, subscriptions = dict(self.messages), dict(self.last), dict(self.subscriptions)
        info = GaugeMetricFamily("wildpose_proxy_info", "this proxy: version, bind (value 1)",
                                 labels=["bind", "version"])
        info.add_metric([self.bind, __version__], 1.0)
        yield info
        forwarded = CounterMetricFamily("wildpose_proxy_messages", "messages forwarded to subscribers",
                                        labels=["topic", "stream"])
        for (kind, stream), count in sorted(messages.items()):
            forwarded.add_metric([kind, stream], count)
        yield forwarded
        age = GaugeMetricFamily("wildpose_proxy_last_message_age_seconds",
                                "seconds since the stream's last message through the proxy", labels=["stream"])
        for stream, seen in sorted(last.items()):
            age.add_metric([stream], now - seen)
        yield age
        events = CounterMetricFamily("wildpose_proxy_subscription_events", "subscriptions and unsubscriptions "
                                     "from subscribers (each topic a subscriber asks for is one)", labels=["kind"])
        for kind in ("subscribe", "unsubscribe"):
            events.add_metric([kind], subscriptions.get(kind, 0))
        yield events


def run_proxy(upstreams: list[str], bind: str, send_hwm: int = 1000, *,
              upstream_keys: auth.ClientKeys | None = None, curve_secret: str | None = None,
              curve_clients: str | None = None, metrics: str | None = None) -> None:
    """Forward until SIGINT or SIGTERM. `upstreams`: the pipelines' `--publish` endpoints.

    upstream_keys: CURVE client keys for pipelines that run with `--curve-secret` (one server key for
    all of them: the proxy's upstream socket is one CURVE client). curve_secret / curve_clients: encrypt
    and restrict the proxy's own side, as `wildpose run` does. metrics: "[HOST:]PORT" to serve
    Prometheus /metrics and the health paths of what passes through (`ProxyCounts`).
    """
    if not upstreams:
        raise ConfigError("the proxy needs at least one --upstream ENDPOINT (a pipeline's --publish)")
    for endpoint in [*upstreams, bind]:
        if "://" not in endpoint:
            raise ConfigError(f"{endpoint!r} is not a ZeroMQ endpoint; write tcp://HOST:PORT or ipc://PATH")
    auth.check_server_keys("proxy", curve_secret, curve_clients)
    if metrics is not None:
        from wildpose.stream import health

        health.parse_address(metrics)
    context = zmq.Context()
    frontend, backend = sockets.forwarder(context, send_hwm)
    authenticator = capture = counts = server = None

    def close_all() -> None:
        """Everything opened so far, in an order that lets the context end."""
        if server is not None:
            server.close()
        if counts is not None:
            counts.close()
        if authenticator is not None:
            authenticator.stop()
        for socket in (capture, frontend, backend):
            if socket is not None:
                socket.close(linger=0)
        context.term()

    try:
        if upstream_keys is not None:
            upstream_keys.apply(frontend)
        if curve_secret is not None:
            authenticator = auth.secure_publisher(context, backend, curve_secret, curve_clients)
        for endpoint in upstreams:
            frontend.connect(endpoint)
        backend.bind(bind)
    except (zmq.ZMQError, WildPoseError) as exc:
        close_all()
        if isinstance(exc, WildPoseError):
            raise
        raise PipelineError(f"the proxy cannot use {bind} or an upstream: {exc.strerror}; is another program "
                            "bound to it? choose another with --bind") from None
    try:
        if metrics is not None:
            from wildpose.stream import health

            capture = context.socket(zmq.PUB)
            capture.bind(_CAPTURE)
            counts = ProxyCounts(context, upstreams, bind)
            server = health.MetricsServer(metrics, counts)
    except WildPoseError:
        close_all()
        raise
    previous = signal.signal(signal.SIGTERM, _interrupt)
    log.info("proxy: %d pipeline(s) %s -> subscribers on %s", len(upstreams), ", ".join(upstreams), bind)
    try:
        if counts is not None:
            counts.running = True
        zmq.proxy(frontend, backend, capture)
    except (KeyboardInterrupt, zmq.ContextTerminated):
        log.info("proxy: stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        close_all()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
