"""CURVE on the pose stream: with keys, listed subscribers receive everything; a subscriber with an
unlisted key, or none, receives nothing; bad key files get one clear line."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq
from support import assert_one_error_line, free_port, receive_poses, wildpose

from wildpose.errors import ConfigError
from wildpose.stream import auth, schema
from wildpose.stream.client import PoseSubscriber


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    server = auth.generate_keys(folder, "server")
    allowed = auth.generate_keys(folder / "clients", "viewer")
    stranger = auth.generate_keys(folder / "others", "stranger")
    return {"server": server, "allowed": allowed, "stranger": stranger, "clients": folder / "clients"}


class Publisher:
    """An XPUB with CURVE on, sending a valid pose message every 20 ms until stopped."""

    def __init__(self, keys) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.XPUB)
        self.authenticator = auth.secure_publisher(self.context, self.socket, keys["server"][1], keys["clients"])
        self.socket.bind(self.endpoint)
        self.running = True
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        person = schema.person(1, [0, 0, 10, 10], 0.9, np.zeros((16, 2)), np.zeros((16, 3)), np.ones(16), False)
        seq = 0
        while self.running:
            self.socket.send_multipart([b"pose/cam", schema.pack(schema.pose("cam", seq, time.time(), time.time(),
                                                                              (64, 48), [person]))])
            seq += 1
            time.sleep(0.02)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.socket.close(linger=0)
        self.authenticator.stop()
        self.context.term()


def test_only_a_listed_client_receives_the_encrypted_stream(keys):
    publisher = Publisher(keys)
    try:
        server_public = str(keys["server"][0])
        with PoseSubscriber(publisher.endpoint, curve_server_key=server_public,
                            curve_secret=str(keys["allowed"][1])) as listed, \
                PoseSubscriber(publisher.endpoint, curve_server_key=server_public,
                               curve_secret=str(keys["stranger"][1])) as stranger, \
                PoseSubscriber(publisher.endpoint) as plain:
            assert len(receive_poses(listed, 10, timeout=10)) == 10
            assert stranger.recv(timeout=1.5) is None
            assert plain.recv(timeout=0.5) is None
    finally:
        publisher.close()


def test_the_pipeline_publishes_to_a_listed_subscriber_only(keys, walker_clip, pipeline):
    run = pipeline("--source", str(walker_clip), "--every-frame", "--wait-subscribers", "1",
                   "--curve-secret", str(keys["server"][1]), "--curve-clients", str(keys["clients"]))
    run.wait_for_log("CURVE on")
    with PoseSubscriber(run.endpoint) as plain:
        result = wildpose("subscribe", "--endpoint", run.endpoint, "--count", "5", "--timeout", "60",
                          "--curve-server-key", str(keys["server"][0]), "--curve-secret", str(keys["allowed"][1]))
        assert result.returncode == 0, result.stderr
        assert sum(line.startswith("pose walker seq=") for line in result.stdout.splitlines()) == 5, result.stdout
        assert plain.recv(timeout=1.0) is None
    assert run.wait() == 0, run.log


def test_bad_keys_get_one_clear_line(keys, walker_clip, tmp_path):
    not_a_key = tmp_path / "x.key_secret"
    not_a_key.write_text("hello\n")
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--curve-secret", str(not_a_key)),
                          "is not a CURVE secret key")
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--curve-secret", str(tmp_path / "none")),
                          "not found", "wildpose keys")
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--curve-secret", str(keys["server"][1]),
                                   "--curve-clients", str(tmp_path)), "holds no NAME.key file")
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--curve-clients", str(keys["clients"])),
                          "needs curve_secret")
    assert_one_error_line(wildpose("subscribe", "--curve-server-key", str(keys["server"][0]), "--timeout", "1"),
                          "needs both")


def test_keys_are_made_once_and_the_secret_is_owner_only(tmp_path):
    public, secret = auth.generate_keys(tmp_path, "door")
    assert public.name == "door.key" and secret.name == "door.key_secret"
    assert secret.stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError, match="exists already"):
        auth.generate_keys(tmp_path, "door")
    with pytest.raises(ConfigError, match="letters, digits"):
        auth.generate_keys(tmp_path, "../escape")


def test_replay_and_record_speak_curve_too(keys, recorded_session, command, tmp_path):
    """A CURVE replay reaches a recorder with a listed key, byte for byte; one without keys records nothing."""
    from wildpose.stream import recording

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    listed, plain = tmp_path / "listed.mcap", tmp_path / "plain.mcap"
    keyed = command("record", "--endpoint", endpoint, "--output", str(listed), "--idle-timeout", "2",
                    "--curve-server-key", str(keys["server"][0]), "--curve-secret", str(keys["allowed"][1]))
    unkeyed = command("record", "--endpoint", endpoint, "--output", str(plain), "--duration", "8")
    replay = command("replay", str(recorded_session.path), "--publish", endpoint, "--as-fast-as-possible",
                     "--wait-subscribers", "1", "--curve-secret", str(keys["server"][1]),
                     "--curve-clients", str(keys["clients"]))
    assert replay.wait(timeout=60) == 0, replay.log
    assert keyed.wait(timeout=30) == 0, keyed.log
    assert unkeyed.wait(timeout=30) == 0, unkeyed.log
    got, _ = recording.read_all(listed)
    sent = [m for m in recorded_session.messages if m.topic != "meta"]
    assert [m.payload for m in got if m.topic != "meta"] == [m.payload for m in sent]
    assert recording.read_all(plain)[0] == []


def test_a_subscriber_with_half_the_keys_gets_one_clear_line(keys):
    assert_one_error_line(wildpose("record", "--output", "x.mcap", "--curve-secret", str(keys["allowed"][1])),
                          "needs both")


def test_the_publisher_binds_to_loopback_unless_told_and_warns_on_all_interfaces_without_keys(keys, walker_clip):
    from wildpose.stream.config import PublishConfig

    assert PublishConfig().endpoint.startswith("tcp://127.0.0.1:")
    common = ("run", "--source", f"walker={walker_clip}", "--every-frame", "--detector", "none")
    warning = "publishing on all interfaces"
    bare = wildpose(*common, "--publish", f"tcp://*:{free_port()}")
    assert bare.returncode == 0, bare.stderr
    assert warning in bare.stderr and "--curve-secret" in bare.stderr
    encrypted = wildpose(*common, "--publish", f"tcp://0.0.0.0:{free_port()}", "--curve-secret",
                         str(keys["server"][1]), "--curve-clients", str(keys["clients"]))
    assert encrypted.returncode == 0, encrypted.stderr
    assert "CURVE on" in encrypted.stderr and warning not in encrypted.stderr
