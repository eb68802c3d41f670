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

import logging
import signal

import zmq

from wildpose.errors import ConfigError, PipelineError, WildPoseError
from wildpose.stream import auth

log = logging.getLogger(__name__)


def run_proxy(upstreams: list[str], bind: str, send_hwm: int = 1000, *,
              upstream_keys: auth.ClientKeys | None = None, curve_secret: str | None = None,
              curve_clients: str | None = None) -> None:
    """Forward until SIGINT or SIGTERM. `upstreams`: the pipelines' `--publish` endpoints.

    upstream_keys: CURVE client keys for pipelines that run with `--curve-secret` (one server key for
    all of them: the proxy's upstream socket is one CURVE client). curve_secret / curve_clients: encrypt
    and restrict the proxy's own side, as `wildpose run` does.
    """
    if not upstreams:
        raise ConfigError("the proxy needs at least one --upstream ENDPOINT (a pipeline's --publish)")
    for endpoint in [*upstreams, bind]:
        if "://" not in endpoint:
            raise ConfigError(f"{endpoint!r} is not a ZeroMQ endpoint; write tcp://HOST:PORT or ipc://PATH")
    auth.check_server_keys("proxy", curve_secret, curve_clients)
    context = zmq.Context()
    frontend = context.socket(zmq.XSUB)
    backend = context.socket(zmq.XPUB)
    for socket in (frontend, backend):
        socket.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT too (IPv4 still works)
    backend.setsockopt(zmq.XPUB_VERBOSE, 1)
    backend.setsockopt(zmq.SNDHWM, send_hwm)
    authenticator = None
    try:
        if upstream_keys is not None:
            upstream_keys.apply(frontend)
        if curve_secret is not None:
            authenticator = auth.secure_publisher(context, backend, curve_secret, curve_clients)
        for endpoint in upstreams:
            frontend.connect(endpoint)
        backend.bind(bind)
    except (zmq.ZMQError, WildPoseError) as exc:
        if authenticator is not None:
            authenticator.stop()
        frontend.close(linger=0)
        backend.close(linger=0)
        context.term()
        if isinstance(exc, WildPoseError):
            raise
        raise PipelineError(f"the proxy cannot use {bind} or an upstream: {exc.strerror}; is another program "
                            "bound to it? choose another with --bind") from None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    log.info("proxy: %d pipeline(s) %s -> subscribers on %s", len(upstreams), ", ".join(upstreams), bind)
    try:
        zmq.proxy(frontend, backend)
    except (KeyboardInterrupt, zmq.ContextTerminated):
        log.info("proxy: stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if authenticator is not None:
            authenticator.stop()
        frontend.close(linger=0)
        backend.close(linger=0)
        context.term()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
