"""The pipeline's HTTP endpoint for operators (`wildpose run --metrics [HOST:]PORT`).

Served from the supervisor process, on a thread of its own, reading the counters the stages share:

- `/metrics`: Prometheus text format: frames captured, published and dropped (by reason) per stream,
  reconnects and restarts, the age of each source's last frame, capture-to-publish latency as a
  histogram, and whether the stages are up.
- `/livez`: 200 unless the supervisor's watch loop stopped turning while the stages ran (a hung
  supervisor: restart it). Start-up, which may compile a model for minutes, counts as alive.
- `/readyz`: 200 while publish is bound and the stages run, so subscribers get poses; 503 while
  they start or restart. A camera that is down does not make the pipeline unready (its other
  streams still flow): that shows in `/status` and in `wildpose_source_last_frame_age_seconds`.
- `/status`: the same as JSON, each stream's state in words ("receiving", "no frame for 12 s").

`wildpose proxy --metrics` serves the same paths with what passed through the proxy.

Nothing here touches a frame: a slow scraper costs the pipeline nothing.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.config import port_hint
from wildpose.stream.stats import DROP_REASONS, Counters, LatencyHistogram

log = logging.getLogger(__name__)

_HUNG_AFTER_S = 10.0  # the watch loop turns every 50 ms; this long without a turn while running is a hang
_DEFAULT_HOST = "127.0.0.1"


def parse_address(value: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); loopback when no host is given."""
    text = "" if isinstance(value, bool) else str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = _DEFAULT_HOST, text
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if (not port.isdigit() or not 1 <= int(port) <= 65535 or not host
            or (":" in host and not (bracketed and _is_ipv6(host)))):
        raise ConfigError(f"metrics must be PORT, HOST:PORT or [IPv6]:PORT (e.g. 9100 or 0.0.0.0:9100), "
                          f"got {value!r}")
    return host, int(port)


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


@dataclass(frozen=True)
class StreamInfo:
    stream: str
    source: str  # the source as logs show it (passwords redacted)
    live: bool
    silent_after_s: float  # no frame for this long: the source counts as lost (its read timeout)


class Health:
    """What the endpoint reports: the shared counters, plus what the supervisor tells it (`observe`)."""

    def __init__(self, streams: list[StreamInfo], counters: dict[str, Counters],
                 histograms: dict[str, LatencyHistogram], labels: dict[str, str]) -> None:
        self.streams = {info.stream: info for info in streams}
        self.counters, self.histograms, self.labels = counters, histograms, labels
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.phase = "starting"  # starting, running, restarting, stopping
        self.last_turn = self.started
        self.failures: dict[str, str] = {}
        self.finished: set[str] = set()
        self._captured = {s: 0 for s in self.streams}
        self._last_frame: dict[str, float | None] = {s: None for s in self.streams}

    def observe(self, phase: str, failures: dict[str, str] | None = None,
                finished: set[str] | frozenset[str] = frozenset()) -> None:
        """Supervisor: where the run is; called at every turn of its watch loop."""
        with self.lock:
            self.phase, self.last_turn = phase, time.monotonic()
            self.failures = dict(failures or {})
            self.finished = set(finished)
            self._sample(self.last_turn)

    def _sample(self, now: float) -> None:
        for stream, counters in self.counters.items():
            captured = counters.get("captured")
            if captured != self._captured[stream]:
                self._captured[stream], self._last_frame[stream] = captured, now

    # -- what the endpoints say ----------------------------------------------------------------

    def alive(self) -> tuple[bool, str]:
        with self.lock:
            stalled = time.monotonic() - self.last_turn
            if self.phase == "running" and stalled > _HUNG_AFTER_S:
                return False, f"the supervisor's watch loop has not turned for {stalled:.0f} s"
            return True, f"alive ({self.phase})"

    def ready(self) -> tuple[bool, str]:
        with self.lock:
            if self.phase == "running":
                return True, "ready: the stages run and publish is bound"
            return False, f"not ready: the stages are {self.phase}"

    def status(self) -> dict:
        with self.lock:
            now = time.monotonic()
            self._sample(now)
            streams = {}
            for stream, info in self.streams.items():
                counters = self.counters[stream]
                age = self._age(stream, now)
                streams[stream] = {
                    "source": info.source, "state": self._state(stream, age),
                    "last_frame_age_s": round(age, 3),
                    "captured": counters.get("captured"), "published": counters.get("published"),
                    "dropped": {reason: n for reason, n in counters.drops().items() if n},
                    "reconnects": counters.get("reconnects"), "capture_restarts": counters.get("capture_restarts")}
            return {"phase": self.phase, "uptime_s": round(now - self.started, 3), **self.labels,
                    "streams": streams}

    def _age(self, stream: str, now: float) -> float:
        """Seconds since the stream's last frame (since the run started, before its first)."""
        last = self._last_frame[stream]
        return now - (self.started if last is None else last)

    def _state(self, stream: str, age: float) -> str:
        if stream in self.failures:
            return f"failed: {self.failures[stream]}"
        if self.counters[stream].get("ended") or stream in self.finished:
            return "ended"
        if age > self.streams[stream].silent_after_s:
            state = f"no frame yet after {age:.0f} s" if self._last_frame[stream] is None else \
                f"no frame for {age:.0f} s"
            return state + (" (reconnecting)" if self.streams[stream].live else "")
        return "receiving"

    def collect(self):
        """prometheus_client's collector protocol: every metric, read now."""
        with self.lock:
            now = time.monotonic()
            self._sample(now)
            ages = {stream: self._age(stream, now) for stream in self.streams}
            phase = self.phase
        info = GaugeMetricFamily("wildpose_info", "this pipeline: version, model, backend (value 1)",
                                 labels=sorted(self.labels))
        info.add_metric([self.labels[k] for k in sorted(self.labels)], 1.0)
        yield info
        up = GaugeMetricFamily("wildpose_stages_up", "1 while the stages run (0: starting or restarting)")
        up.add_metric([], 1.0 if phase == "running" else 0.0)
        yield up
        simple = {"captured": ("wildpose_frames_captured", "frames decoded from the source"),
                  "published": ("wildpose_frames_published", "frames whose poses were published"),
                  "reconnects": ("wildpose_source_reconnects", "live source reconnections"),
                  "capture_restarts": ("wildpose_capture_restarts", "capture processes restarted")}
        for counter, (name, documentation) in simple.items():
            family = CounterMetricFamily(name, documentation, labels=["stream"])
            for stream, counters in self.counters.items():
                family.add_metric([stream], counters.get(counter))
            yield family
        # one count for the pipeline: every stream's counter has each restart of the shared stages
        restarts = CounterMetricFamily("wildpose_pipeline_restarts",
                                       "restarts of the stages between the sources and publish")
        restarts.add_metric([], max(counters.get("pipeline_restarts") for counters in self.counters.values()))
        yield restarts
        dropped = CounterMetricFamily("wildpose_frames_dropped", "frames dropped, by reason",
                                      labels=["stream", "reason"])
        for stream, counters in self.counters.items():
            for reason in DROP_REASONS:
                dropped.add_metric([stream, reason], counters.get(f"drop_{reason}"))
        yield dropped
        age = GaugeMetricFamily("wildpose_source_last_frame_age_seconds",
                                "seconds since the source's last frame (since the start, before its first)",
                                labels=["stream"])
        ended = GaugeMetricFamily("wildpose_stream_ended", "1 once the stream's input ended (a file)",
                                  labels=["stream"])
        for stream, counters in self.counters.items():
            age.add_metric([stream], ages[stream])
            ended.add_metric([stream], float(bool(counters.get("ended"))))
        yield age
        yield ended
        latency = HistogramMetricFamily("wildpose_latency_seconds", "capture to publish, per frame",
                                        labels=["stream"])
        for stream, histogram in self.histograms.items():
            buckets, total = histogram.cumulative()
            latency.add_metric([stream], [("+Inf" if bound == float("inf") else repr(bound), count)
                                          for bound, count in buckets], total)
        yield latency


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler, health) -> None:
        self.address_family = socket.AF_INET6 if _is_ipv6(address[0]) else socket.AF_INET
        self.health = health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(health)
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        health = self.server.health
        if path == "/metrics":
            self._reply(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/readyz"):
            ok, text = health.alive() if path == "/livez" else health.ready()
            self._reply(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
        elif path == "/status":
            self._reply(200, (json.dumps(health.status(), indent=1) + "\n").encode(), "application/json")
        else:
            self._reply(404, b"not found: try /metrics, /livez, /readyz or /status\n", "text/plain; charset=utf-8")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("metrics %s: " + format, self.client_address[0], *args)


class MetricsServer:
    """A report over HTTP on a daemon thread; `close` stops it. `health` is a `Health`, or anything
    with its `collect`, `alive`, `ready` and `status` (the proxy's counts, `stream/proxy.py`)."""

    def __init__(self, address: str, health) -> None:
        host, port = parse_address(address)
        try:
            self.server = _Server((host, port), _Handler, health)
        except OSError as exc:
            raise PipelineError(f"cannot serve metrics on {address}: {exc.strerror}; "
                                f"{port_hint(exc.errno, '--metrics')}") from None
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self.thread.start()
        log.info("metrics and health on http://%s:%d (/metrics, /livez, /readyz, /status)",
                 f"[{host}]" if ":" in host else host, self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2)
