"""ZeroMQ CURVE for the pose stream: who may subscribe, and encryption on the wire.

A publisher given its secret key (`--curve-secret server.key_secret`) only talks CURVE: its messages
are encrypted, and a subscriber must know the server's public key to connect at all. With a folder of
allowed client public keys (`--curve-clients DIR`), a ZAP authenticator in the publish process also
turns away every client whose key is not in it, so a subscriber without a valid key receives nothing.
Keys are pyzmq's certificate files (`zmq.auth.create_certificates`: NAME.key public, NAME.key_secret
secret); `wildpose keys` writes them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from wildpose.errors import ConfigError

log = logging.getLogger(__name__)


def generate_keys(folder: str | Path, name: str) -> tuple[Path, Path]:
    """A new key pair `folder/name.key` (public, share it) and `folder/name.key_secret` (owner-only)."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"key name must be letters, digits, - or _, got {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise ConfigError(f"{public} or {secret} exists already; choose another --name or folder")
    made_public, made_secret = zmq.auth.create_certificates(str(folder), name)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)


def _load(path: str | Path, secret: bool) -> tuple[bytes, bytes | None]:
    path = Path(path)
    what = "secret key (NAME.key_secret)" if secret else "public key (NAME.key)"
    if not path.is_file():
        raise ConfigError(f"CURVE {what} {path} not found; create keys with `wildpose keys`")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a CURVE {what}: {str(exc)[:120]}") from None
    if public is None or len(public) != 40 or (secret and (secret_key is None or len(secret_key) != 40)):
        raise ConfigError(f"{path} is not a CURVE {what}: no 40-character Z85 key in it")
    return public, secret_key


@dataclass(frozen=True)
class ClientKeys:
    """A subscriber's CURVE keys: the server's public key file and this client's key pair file."""

    server_key: str
    secret: str

    def __post_init__(self) -> None:
        _load(self.server_key, secret=False)
        _load(self.secret, secret=True)

    def apply(self, socket: zmq.Socket) -> None:
        secure_subscriber(socket, self.server_key, self.secret)


def client_keys(server_key: str | None, secret: str | None) -> ClientKeys | None:
    """From the two command-line flags: both or neither."""
    if (server_key is None) != (secret is None):
        raise ConfigError("CURVE needs both --curve-server-key (the publisher's NAME.key) and --curve-secret "
                          "(this side's NAME.key_secret)")
    return None if server_key is None else ClientKeys(server_key, secret)


def check_server_keys(what: str, secret: str | None, clients: str | None) -> None:
    """A publisher's CURVE settings, checked before any process starts: clients need a secret, and
    both files must be what they claim."""
    if clients is not None and secret is None:
        raise ConfigError(f"{what}: curve_clients (--curve-clients) needs curve_secret (--curve-secret), "
                          "the publisher's key pair")
    if secret is not None:
        check_secret(secret)
        if clients is not None:
            check_clients(clients)


def check_secret(path: str | Path) -> None:
    """Refuse a secret key file that is missing or not a key, before any process starts."""
    _load(path, secret=True)


def check_clients(folder: str | Path) -> None:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"CURVE clients folder {folder} not found; put the allowed clients' NAME.key files in it")
    if not any(folder.glob("*.key")):
        raise ConfigError(f"CURVE clients folder {folder} holds no NAME.key file, so no one could subscribe")


def secure_publisher(context: zmq.Context, socket: zmq.Socket, secret_path: str | Path,
                     clients: str | Path | None) -> ThreadAuthenticator | None:
    """Make `socket` (before it binds) a CURVE server with the key pair in `secret_path`; with `clients`,
    start a ZAP authenticator that admits only the public keys in that folder."""
    public, secret = _load(secret_path, secret=True)
    authenticator = None
    if clients is not None:
        check_clients(clients)
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(clients))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def secure_subscriber(socket: zmq.Socket, server_key: str | Path, secret_path: str | Path) -> None:
    """Make `socket` (before it connects) a CURVE client of the server whose public key is in
    `server_key`, with its own key pair from `secret_path`."""
    server_public, _ = _load(server_key, secret=False)
    public, secret = _load(secret_path, secret=True)
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret
