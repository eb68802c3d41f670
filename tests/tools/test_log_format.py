"""`--log-format json` / WILDPOSE_LOG_FORMAT=json: every line a command and the processes it starts
write on stderr is one JSON object a log collector can read, the final error line included."""

from __future__ import annotations

import datetime
import json

from support import free_port, wildpose

KEYS = {"time", "level", "process", "logger", "message"}


def records(stderr: str) -> list[dict]:
    lines = stderr.splitlines()
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]  # fails on any line that is not one JSON object
    for record in parsed:
        assert KEYS <= set(record), record
        moment = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        assert moment.utcoffset() == datetime.timedelta(0)
    return parsed


def test_a_whole_run_logs_json_lines_from_every_process(walker_clip):
    result = wildpose("--log-format", "json", "run", "--source", f"walker={walker_clip}", "--every-frame",
                      "--detector", "none", "--publish", f"tcp://127.0.0.1:{free_port()}")
    assert result.returncode == 0, result.stderr
    logged = records(result.stderr)
    assert {"MainProcess", "publish", "infer", "capture-walker"} <= {r["process"] for r in logged}
    assert any(r["message"].startswith("final stats walker: captured 48, published 48")
               for r in logged), result.stderr
    assert {r["level"] for r in logged} <= {"INFO", "WARNING"}


def test_the_final_error_line_is_json_too(tmp_path):
    result = wildpose("run", "--source", str(tmp_path / "missing.mp4"), "--detector", "none",
                      env={"WILDPOSE_LOG_FORMAT": "json"})
    assert result.returncode == 1
    last = records(result.stderr)[-1]
    assert last["level"] == "ERROR" and last["message"].startswith("wildpose: error: source file not found")


def test_an_unknown_log_format_is_one_line():
    result = wildpose("run", "--source", "x.mp4", env={"WILDPOSE_LOG_FORMAT": "xml"})
    assert result.returncode == 2
    assert result.stderr.strip() == "wildpose: error: WILDPOSE_LOG_FORMAT must be text or json, got 'xml'"


def test_text_stays_the_default(walker_clip):
    result = wildpose("run", "--source", f"walker={walker_clip}", "--every-frame", "--detector", "none",
                      "--publish", f"tcp://127.0.0.1:{free_port()}")
    assert result.returncode == 0 and "final stats walker:" in result.stderr
    assert not any(line.startswith("{") for line in result.stderr.splitlines())
