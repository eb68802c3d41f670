"""The `triton` backend: inference on one or more Triton Inference Servers over gRPC.

`--engine triton://HOST:PORT[,HOST2:PORT]` sends each batch of uint8 crops to the first listed server
that answers (the models of `engine.triton_repo`, served by `wildpose serve` or an official Triton
server from `wildpose export --triton-repo`). A server that fails a request is skipped at once for the
next one, so a fleet fails over without a gap, and is tried again after a backoff that doubles up to a
cap. When none answers, `infer_crops` raises `EngineUnreachableError` immediately; the pipeline counts
those frames as lost and keeps going.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from wildpose.engine.base import Backend, EngineOutput, check_crops
from wildpose.engine.metadata import OUTPUT_NAMES, EngineMetadata
from wildpose.engine.triton_repo import (
    CROPS_INPUT,
    METADATA_INPUT,
    METADATA_MODEL_NAME,
    METADATA_OUTPUT,
    MODEL_NAME,
)
from wildpose.errors import BackendUnavailableError, ConfigError, EngineUnreachableError

log = logging.getLogger(__name__)

SCHEME = "triton://"
DEFAULT_PORT = 8001  # Triton's gRPC port
RETRY_BACKOFF_S = (0.25, 5.0)  # first wait before a failed server is tried again, cap


def parse_url(url: str) -> tuple[str, ...]:
    """`triton://HOST:PORT[,HOST2:PORT]` -> ("HOST:PORT", ...); the port defaults to 8001, and a
    repeated scheme (`triton://A:1,triton://B:2`) is accepted."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise ConfigError(f"a Triton engine is given as {SCHEME}HOST:PORT[,HOST2:PORT], got {url!r}")
    servers = []
    for part in url[len(SCHEME):].split(","):
        part = part.strip().removeprefix(SCHEME)
        host, port = part.rsplit(":", 1) if ":" in part else (part, str(DEFAULT_PORT))
        if not host or "/" in host or "@" in host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bad Triton server {part!r} in {url!r}; expected HOST:PORT, "
                              f"e.g. {SCHEME}127.0.0.1:{DEFAULT_PORT}")
        servers.append(f"{host}:{int(port)}")
    return tuple(servers)


@dataclass
class _Server:
    address: str
    client: object = None
    retry_at: float = 0.0
    backoff: float = RETRY_BACKOFF_S[0]
    down_since: float | None = None
    last_error: str = ""


class TritonBackend(Backend):
    """Runs the model on Triton servers; the metadata comes from the server's `wildpose_metadata`.

    timeout_s: per request; a server slower than this counts as failed for that request.
    """

    name = "triton"
    device = "remote"

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        try:
            import tritonclient.grpc as grpcclient
        except ImportError:
            raise BackendUnavailableError("the triton backend needs tritonclient[grpc]; "
                                          "pip install 'tritonclient[grpc]'") from None
        if not timeout_s > 0:
            raise ConfigError(f"triton timeout must be > 0 seconds, got {timeout_s!r}")
        self._grpc = grpcclient
        self.url = url
        self.timeout_s = timeout_s
        self._servers = [_Server(address) for address in parse_url(url)]
        self._active = 0
        self.metadata = self._fetch_metadata()
        log.info("triton backend: %s (%s)", ", ".join(s.address for s in self._servers), self.metadata.weights)

    def describe(self) -> str:
        return f"triton on {self.url}, input {self.input_shape}, {self.metadata.model_config}, {self.metadata.weights}"

    # -- inference -------------------------------------------------------------------------------

    def infer_crops(self, crops: np.ndarray) -> EngineOutput:
        check_crops(crops, self.input_size)
        crops = np.ascontiguousarray(crops)

        def request(client):
            tensor = self._grpc.InferInput(CROPS_INPUT, list(crops.shape), "UINT8")
            tensor.set_data_from_numpy(crops)
            outputs = [self._grpc.InferRequestedOutput(name) for name in OUTPUT_NAMES]
            result = client.infer(MODEL_NAME, [tensor], outputs=outputs, client_timeout=self.timeout_s)
            return EngineOutput(*(result.as_numpy(name) for name in OUTPUT_NAMES))

        return self._call(request)

    def _infer(self, batch: np.ndarray) -> EngineOutput:
        # Servers take uint8 crops (a quarter of the bytes on the wire); a float batch made from uint8
        # images round-trips exactly.
        crops = np.clip(np.rint(batch.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
        return self.infer_crops(crops)

    def _fetch_metadata(self) -> EngineMetadata:
        def request(client):
            tensor = self._grpc.InferInput(METADATA_INPUT, [1], "INT32")
            tensor.set_data_from_numpy(np.zeros(1, np.int32))
            result = client.infer(METADATA_MODEL_NAME, [tensor], client_timeout=self.timeout_s)
            record = result.as_numpy(METADATA_OUTPUT).reshape(-1)[0]
            return record.decode() if isinstance(record, bytes) else str(record)

        try:
            text = self._call(request)
        except EngineUnreachableError:
            raise BackendUnavailableError(f"no Triton server answers ({self._reasons()}); start one with "
                                          "`wildpose serve` or check the address") from None
        metadata = EngineMetadata.from_json(text, f"the model served at {self.url}")
        metadata.check_compatible(f"the model served at {self.url}")
        return metadata

    def _call(self, request):
        """`request(client)` on the active server, failing over in list order; servers that failed
        recently wait out their backoff. Raises `EngineUnreachableError` when none answers."""
        now = time.monotonic()
        count = len(self._servers)
        for step in range(count):
            index = (self._active + step) % count
            server = self._servers[index]
            if server.retry_at > now:
                continue
            try:
                if server.client is None:
                    server.client = self._grpc.InferenceServerClient(server.address)
                result = request(server.client)
            except Exception as exc:  # tritonclient/grpc raise several types for a lost server
                self._failed(server, exc)
                continue
            self._answered(server, index)
            return result
        next_try = min(max(0.0, s.retry_at - now) for s in self._servers)
        raise EngineUnreachableError(f"no Triton server answers ({self._reasons()}); next try in {next_try:.2f} s")

    def _reasons(self) -> str:
        return "; ".join(f"{s.address}: {s.last_error}" for s in self._servers)

    def _failed(self, server: _Server, exc: Exception) -> None:
        now = time.monotonic()
        message = getattr(exc, "message", None)
        text = (message() if callable(message) else str(exc)) or type(exc).__name__
        reason = text.splitlines()[0][:160]
        server.last_error = reason
        if server.down_since is None:
            server.down_since = now
            log.warning("triton server %s failed: %s; trying the others, retrying it in %.2f s",
                        server.address, reason, server.backoff)
        server.retry_at = now + server.backoff
        server.backoff = min(server.backoff * 2, RETRY_BACKOFF_S[1])
        # A fresh channel on the next try: gRPC's own reconnect backoff grows to minutes.
        self._close_client(server)

    def _answered(self, server: _Server, index: int) -> None:
        if server.down_since is not None:
            log.warning("triton server %s answers again after %.1f s", server.address,
                        time.monotonic() - server.down_since)
            server.down_since = None
        server.backoff = RETRY_BACKOFF_S[0]
        if index != self._active:
            log.warning("triton: now using %s", server.address)
            self._active = index

    def _close_client(self, server: _Server) -> None:
        if server.client is not None:
            try:
                server.client.close()
            except Exception:  # closing a broken channel may itself fail; it is gone either way
                pass
            server.client = None

    def close(self) -> None:
        for server in self._servers:
            self._close_client(server)
