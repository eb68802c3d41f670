"""`wildpose view`, `web`, `record` and `replay`: seeing and keeping what a pipeline publishes.

Each verb is a thin layer over `stream.view`, `stream.web` and `stream.recording`: flags become a
frozen config (checked there), SIGINT/SIGTERM end the verb cleanly (files are finished, not cut), and
bad input reaches the user as one `wildpose: error: ...` line.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable

from wildpose.tools import run_cli

VIEW_EXAMPLES = """examples:
  wildpose view --output view.mp4                          # until Ctrl-C; the pipeline needs --publish-frames
  wildpose view --endpoint tcp://10.0.0.7:5555 --output door.mp4 --stream door --duration 60
"""

WEB_EXAMPLES = """examples:
  wildpose web                                             # then open http://127.0.0.1:8080/
  wildpose web --endpoint tcp://127.0.0.1:5556 --port 8081  # a replay on another port
"""

RECORD_EXAMPLES = """examples:
  wildpose record --output session.mcap                    # until Ctrl-C
  wildpose record --output session.mcap --max-bytes 100000000   # session.000.mcap, session.001.mcap, ...
  wildpose record --endpoint tcp://10.0.0.7:5555 --output door.mcap --duration 600
"""

BVH_EXAMPLES = """examples:
  wildpose bvh session.mcap --output session.bvh           # session.<stream>.<id>.bvh per person
  wildpose record --output session.mcap --bvh session.bvh  # record, then convert when it ends
"""

REPLAY_EXAMPLES = """examples:
  wildpose replay session.mcap                             # at the recorded pace on tcp://127.0.0.1:5555
  wildpose replay session.mcap --publish tcp://127.0.0.1:5556 --as-fast-as-possible --wait-subscribers 1
  wildpose replay session.0*.mcap --loop                   # the parts of a rotated recording, again and again
"""

_DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


def add_parsers(verbs) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    view = verbs.add_parser("view", help="write the overlay video of a running pipeline (from its thumbnails)",
                            epilog=VIEW_EXAMPLES, formatter_class=raw)
    _endpoints(view)
    view.add_argument("--output", default="view.mp4",
                      help="video file (default view.mp4; several streams: view.<stream>.mp4 each)")
    view.add_argument("--stream", action="append", dest="streams", help="only these stream ids (repeatable)")
    view.add_argument("--count", type=int, help="stop after writing this many frames")
    _stops(view, "frame")
    view.set_defaults(handler=_view)

    web = verbs.add_parser("web", help="serve a live browser viewer on 127.0.0.1", epilog=WEB_EXAMPLES,
                           formatter_class=raw)
    _endpoints(web)
    web.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (default 8080; 0: any free one)")
    web.set_defaults(handler=_web)

    record = verbs.add_parser("record", help="record everything a pipeline publishes to MCAP", epilog=RECORD_EXAMPLES,
                              formatter_class=raw)
    _endpoints(record)
    record.add_argument("--output", required=True, help="MCAP file to write (.mcap)")
    record.add_argument("--max-bytes", type=int,
                        help="start a new file once one reaches this size: OUTPUT.000.mcap, OUTPUT.001.mcap, ...")
    record.add_argument("--bvh", metavar="OUT.bvh",
                        help="when the recording ends, also write each tracked person as a BVH skeleton "
                             "(OUT.<stream>.<id>.bvh)")
    _stops(record, "message")
    record.set_defaults(handler=_record)

    bvh = verbs.add_parser("bvh", help="convert a recording to BVH skeletons, one per tracked person",
                           epilog=BVH_EXAMPLES, formatter_class=raw)
    bvh.add_argument("recordings", nargs="+", metavar="RECORDING.mcap",
                     help="a recording, or the parts of a rotated one in order")
    bvh.add_argument("--output", required=True, metavar="OUT.bvh",
                     help="BVH file; several people: OUT.<stream>.<id>.bvh each")
    bvh.set_defaults(handler=_bvh)

    replay = verbs.add_parser("replay", help="publish a recording over ZeroMQ as the pipeline did",
                              epilog=REPLAY_EXAMPLES, formatter_class=raw)
    replay.add_argument("recordings", nargs="+", metavar="RECORDING.mcap",
                        help="a recording, or the parts of a rotated one in order")
    replay.add_argument("--publish", default=_DEFAULT_ENDPOINT,
                        help=f"ZeroMQ endpoint to bind (default {_DEFAULT_ENDPOINT})")
    replay.add_argument("--as-fast-as-possible", action="store_true",
                        help="no pacing: send as fast as the subscribers take the messages (none is dropped)")
    replay.add_argument("--wait-subscribers", type=int, default=0,
                        help="hold the replay until N subscriptions arrived (default 0)")
    replay.add_argument("--send-hwm", type=int, default=1000,
                        help="paced: messages queued per subscriber before dropping (default 1000)")
    replay.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    run_cli.add_curve_publisher_flags(replay)
    replay.set_defaults(handler=_replay)


def _endpoints(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", action="append", dest="endpoints",
                        help=f"publisher endpoint, repeatable (default {_DEFAULT_ENDPOINT})")
    parser.add_argument("--curve-server-key", metavar="NAME.key",
                        help="the publisher's public key, when it runs with --curve-secret")
    parser.add_argument("--curve-secret", metavar="NAME.key_secret", help="... and this side's key pair")


def _curve(args: argparse.Namespace):
    from wildpose.stream import auth

    return auth.client_keys(args.curve_server_key, args.curve_secret)


def _stops(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--idle-timeout", type=float,
                        help=f"stop once no {what} arrived for this many seconds (counted from the first one)")


def _view(args: argparse.Namespace) -> int:
    from wildpose.stream import view

    config = view.ViewConfig(endpoints=tuple(args.endpoints or [_DEFAULT_ENDPOINT]), output=args.output,
                             streams=tuple(args.streams) if args.streams else None, count=args.count,
                             duration_s=args.duration, idle_timeout_s=args.idle_timeout, curve=_curve(args))
    should_stop, restore = _stop_on_signals()
    try:
        summary = view.view(config, should_stop)
    finally:
        restore()
    for stream, path in summary.paths.items():
        print(f"{path}: {summary.frames.get(stream, 0)} frames of {stream}")
    return 0


def _web(args: argparse.Namespace) -> int:
    from wildpose.stream import web

    web.serve(web.WebConfig(endpoints=tuple(args.endpoints or [_DEFAULT_ENDPOINT]), port=args.port,
                            curve=_curve(args)))
    return 0


def _record(args: argparse.Namespace) -> int:
    from wildpose.stream import recording, recording_bvh

    if args.bvh:
        recording_bvh.check_output(args.bvh)  # before the recording, not after it

    config = recording.RecordConfig(endpoints=tuple(args.endpoints or [_DEFAULT_ENDPOINT]), output=args.output,
                                    max_bytes=args.max_bytes, duration_s=args.duration,
                                    idle_timeout_s=args.idle_timeout, curve=_curve(args))
    should_stop, restore = _stop_on_signals()
    try:
        summary = recording.record(config, should_stop)
    finally:
        restore()
    for path in summary.files:
        print(path)
    if args.bvh:
        for path in recording_bvh.convert(summary.files, args.bvh):
            print(path)
    return 0


def _bvh(args: argparse.Namespace) -> int:
    from wildpose.stream import recording_bvh

    for path in recording_bvh.convert(args.recordings, args.output):
        print(path)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from wildpose.stream import replay

    config = replay.ReplayConfig(paths=tuple(args.recordings), endpoint=args.publish,
                                    paced=not args.as_fast_as_possible, wait_subscribers=args.wait_subscribers,
                                    send_hwm=args.send_hwm, loop=args.loop, curve_secret=args.curve_secret,
                                    curve_clients=args.curve_clients)
    should_stop, restore = _stop_on_signals()
    try:
        replay.replay(config, should_stop)
    finally:
        restore()
    return 0


def _stop_on_signals() -> tuple[Callable[[], bool], Callable[[], None]]:
    """(should_stop, restore): SIGINT/SIGTERM set a flag the verb polls, so it finishes its files
    instead of being interrupted in the middle of a write."""
    stopped: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: stopped.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return (lambda: bool(stopped)), restore
