"""`wildpose view`, `web`, `record` and `replay`: bad input gets one error line and a non-zero exit,
never a traceback; every flag is documented."""

from __future__ import annotations

import socket

import pytest
from mcap.writer import Writer
from support import assert_one_error_line, free_port, wildpose

from wildpose.tools import cli


@pytest.fixture()
def not_mcap(tmp_path):
    path = tmp_path / "notes.mcap"
    path.write_text("these are not messages\n" * 20)
    return path


@pytest.fixture()
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("args, fragments", [
    (["replay", "{tmp}/missing.mcap"], ["recording not found: ", "missing.mcap"]),
    (["replay", "{not_mcap}"], ["notes.mcap is not an MCAP recording", "wildpose record"]),
    (["replay", "{not_mcap}", "--wait-subscribers", "-1"], ["replay.wait_subscribers must be a non-negative integer"]),
    (["replay", "{not_mcap}", "--publish", "udp://1.2.3.4:5"], ["endpoints must be tcp://HOST:PORT or ipc://PATH"]),
    (["replay"], ["the following arguments are required: RECORDING.mcap"]),
    (["record", "--output", "{tmp}/session.txt"], ["--output must end in .mcap"]),
    (["record", "--output", "{tmp}/no/such/session.mcap"], ["does not exist"]),
    (["record", "--output", "{tmp}/s.mcap", "--max-bytes", "10"], ["record.max_bytes must be at least 65536"]),
    (["record", "--output", "{tmp}/s.mcap", "--duration", "0"], ["record.duration_s must be a positive number"]),
    (["record", "--output", "{tmp}/s.mcap", "--max-bytes", "lots"], ["--max-bytes", "invalid int value"]),
    (["record"], ["the following arguments are required: --output"]),
    (["view", "--output", "{tmp}/view.avi"], ["view: --output must end in one of"]),
    (["view", "--output", "{tmp}/v.mp4", "--count", "0"], ["view.count must be a positive integer"]),
    (["web", "--port", "70000"], ["--port must be an integer between 0 and 65535"]),
    (["web", "--endpoint", "localhost:5555"], ["endpoints must be tcp://HOST:PORT or ipc://PATH"]),
    (["web", "--turbo"], ["unrecognized arguments: --turbo"]),
])
def test_bad_input_is_one_error_line(tmp_path, not_mcap, args, fragments):
    args = [a.format(tmp=tmp_path, not_mcap=not_mcap) for a in args]
    assert_one_error_line(wildpose(*args, timeout=30), *fragments)


def test_replay_on_a_port_in_use(tmp_path, taken_port):
    empty = tmp_path / "empty.mcap"
    with open(empty, "wb") as file:  # a whole MCAP file with no messages
        writer = Writer(file)
        writer.start()
        writer.finish()
    result = wildpose("replay", str(empty), "--publish", f"tcp://127.0.0.1:{taken_port}")
    assert_one_error_line(result, f"cannot publish on tcp://127.0.0.1:{taken_port}", "--publish")


def test_web_on_a_port_in_use(taken_port):
    result = wildpose("web", "--port", str(taken_port), timeout=30)
    assert_one_error_line(result, f"cannot serve on 127.0.0.1:{taken_port}", "another program is using it", "--port")


def test_view_with_nothing_to_view_says_what_to_check(tmp_path):
    result = wildpose("view", "--endpoint", f"tcp://127.0.0.1:{free_port()}", "--output", str(tmp_path / "v.mp4"),
                      "--duration", "0.5", timeout=30)
    assert_one_error_line(result, "no thumbnail arrived", "--publish-frames")


@pytest.mark.parametrize("verb", ["view", "web", "record", "replay"])
def test_every_flag_of_the_new_verbs_has_help_and_the_verb_has_examples(verb):
    parser = cli.build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb")
    sub = verbs.choices[verb]
    assert sub.epilog and sub.epilog.startswith("examples:")
    assert all(action.help for action in sub._actions)
