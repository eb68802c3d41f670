"""The live browser viewer: a small aiohttp server that bridges a pipeline's ZeroMQ topics to WebSockets.

Browsers cannot speak ZeroMQ, so `wildpose web` subscribes (pose, stats, meta, frame), checks every
message with the client library, and forwards it to each open page as JSON (thumbnails as base64).
Each page has a bounded queue: a slow browser loses its own messages, counted, and slows no one. It
serves only on 127.0.0.1 and refuses WebSocket connections from other origins, so neither the network
nor a web page in the same browser can read the poses. The page (static/, with three.js vendored
under its MIT licence) needs nothing from the internet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.asyncio
from aiohttp import WSMsgType, web

from wildpose import __version__
from wildpose.errors import ConfigError, WildPoseError
from wildpose.stream import client, schema, sockets
from wildpose.stream.auth import ClientKeys
from wildpose.stream.config import check_endpoints, check_positive, port_hint
from wildpose.training import joints

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
HOST = "127.0.0.1"
_STATUS_INTERVAL_S = 1.0
_CLIENT_QUEUE = 256  # messages a page may fall behind before its newest ones are dropped
_TOPICS = (schema.POSE_PREFIX, schema.STATS_PREFIX, schema.META_TOPIC, schema.FRAME_PREFIX)


class WebError(WildPoseError):
    """The viewer cannot be served (e.g. the port is taken)."""


@dataclass(frozen=True)
class WebConfig:
    endpoints: tuple[str, ...] = (client.DEFAULT_ENDPOINT,)
    port: int = 8080  # 0: any free port (the log says which)
    receive_hwm: int = 1000
    curve: ClientKeys | None = None  # for a publisher with CURVE on

    def __post_init__(self) -> None:
        check_endpoints("web", self.endpoints)
        check_positive("web", "receive_hwm", self.receive_hwm, integer=True)
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"web: --port must be an integer between 0 and 65535, got {self.port!r}")


class _Page:
    """One open page: its WebSocket and a bounded queue of JSON texts."""

    def __init__(self, socket: web.WebSocketResponse) -> None:
        self.socket = socket
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=_CLIENT_QUEUE)
        self.dropped = 0

    def offer(self, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1

    async def send_loop(self) -> None:
        while True:
            text = await self.queue.get()
            await self.socket.send_str(text)


def to_json(topic: str, payload: bytes) -> str:
    """A validated message as the page reads it: the schema's map plus `kind` and `topic`."""
    message = client.decode(topic.encode(), payload)  # raises client.SchemaError
    values = schema.unpack(payload)
    kind = {client.PoseMessage: "pose", client.StatsMessage: "stats", client.MetaMessage: "meta",
            client.FrameMessage: "frame"}[type(message)]
    if kind == "frame":
        values["jpeg"] = base64.b64encode(values["jpeg"]).decode("ascii")
    return json.dumps({"kind": kind, "topic": topic, **values})


class Bridge:
    """ZeroMQ in, every page out; keeps the latest message per topic for pages that open later."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.pages: set[_Page] = set()
        self.latest: dict[str, str] = {}  # topic -> JSON, so a new page shows something at once
        self.received = 0
        self.invalid = 0
        self.last_message: float | None = None

    def hello(self) -> str:
        return json.dumps({"kind": "hello", "version": __version__, "endpoints": list(self.config.endpoints),
                           "joints": list(joints.NAMES), "edges": [list(e) for e in joints.EDGES]})

    def status(self) -> str:
        since = None if self.last_message is None else round(time.monotonic() - self.last_message, 3)
        return json.dumps({"kind": "status", "endpoints": list(self.config.endpoints), "since_last_s": since,
                           "received": self.received, "invalid": self.invalid,
                           "dropped": sum(p.dropped for p in self.pages)})

    def broadcast(self, text: str) -> None:
        for page in self.pages:
            page.offer(text)

    async def pump(self, socket: zmq.asyncio.Socket) -> None:
        while True:
            parts = await socket.recv_multipart()
            if len(parts) != 2:
                self.invalid += 1
                continue
            topic = parts[0].decode("utf-8", "replace")
            try:
                text = to_json(topic, parts[1])
            except client.SchemaError as exc:
                if self.invalid == 0:
                    log.warning("ignoring a malformed message: %s", exc)
                self.invalid += 1
                continue
            self.received += 1
            self.last_message = time.monotonic()
            self.latest[topic] = text
            self.broadcast(text)

    async def report(self) -> None:
        while True:
            await asyncio.sleep(_STATUS_INTERVAL_S)  # a period for the page's status line, not a sync
            self.broadcast(self.status())

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in _allowed_origins(request):
            raise web.HTTPForbidden(text=f"origin {origin} may not read the poses")
        socket = web.WebSocketResponse(heartbeat=10.0)
        await socket.prepare(request)
        page = _Page(socket)
        for text in (self.hello(), *self.latest.values(), self.status()):
            page.offer(text)
        self.pages.add(page)
        sender = asyncio.create_task(page.send_loop())
        try:
            async for message in socket:  # the page sends nothing; this waits for it to close
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.pages.discard(page)
            sender.cancel()
        return socket


def _allowed_origins(request: web.Request) -> set[str]:
    port = request.url.port
    return {f"http://{HOST}:{port}", f"http://localhost:{port}"}


async def _index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def _no_icon(_request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask; there is none, and a 404 would be console noise


def build_app(bridge: Bridge) -> web.Application:
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_get("/ws", bridge.websocket)
    app.router.add_static("/static/", STATIC)
    return app


async def _serve(config: WebConfig) -> None:
    bridge = Bridge(config)
    runner = web.AppRunner(build_app(bridge), handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, config.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise WebError(f"cannot serve on {HOST}:{config.port}: {exc.strerror}; {port_hint(exc.errno, '--port')}") \
            from None
    port = runner.addresses[0][1]
    context = zmq.asyncio.Context()
    socket = sockets.subscriber(context, config.receive_hwm)
    for prefix in _TOPICS:
        socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    if config.curve is not None:
        config.curve.apply(socket)
    for endpoint in config.endpoints:
        socket.connect(endpoint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(bridge.pump(socket)), asyncio.create_task(bridge.report())]
    log.info("viewer on http://%s:%d/ showing %s", HOST, port, " ".join(config.endpoints))
    try:
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception():
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        for page in list(bridge.pages):
            await page.socket.close()
        await runner.cleanup()
        socket.close(linger=0)
        context.term()
    log.info("viewer stopped (%d messages bridged, %d malformed)", bridge.received, bridge.invalid)


def serve(config: WebConfig) -> None:
    """Serve the viewer until SIGINT/SIGTERM."""
    asyncio.run(_serve(config))
