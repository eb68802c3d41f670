"""The pipeline end to end on real parts: real decoded video, real processes, real ZeroMQ sockets."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from support import assert_valid_pose, receive_poses

from wildpose.stream.client import MetaMessage, PoseMessage, PoseSubscriber, StatsMessage
from wildpose.tools import democlip


def frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def default_weights_label() -> str:
    from wildpose.engine import default_model, onnx_file

    return onnx_file.load_verified(default_model.onnx_path())[1].weights


# The street clip (1280x720, 50 fps, several people) is checked the same way by test_crowds.py.
@pytest.mark.parametrize("clip, size", [
    ("video/pose_squats.mp4", (720, 1280)),
    ("video/worker-zone-detection.gif", (480, 270)),
])
def test_every_frame_of_a_real_video_reaches_the_subscriber_in_order(pipeline, shared_data, clip, size):
    path = shared_data / clip
    frames = frame_count(path)
    run = pipeline("--source", f"clip={path}", "--every-frame", "--wait-subscribers", "1",
                   "--detector", str(shared_data / "models" / "yolox_nano.onnx"))
    with PoseSubscriber(run.endpoint) as subscriber:
        poses = receive_poses(subscriber, frames, timeout=120)
        assert run.wait() == 0, run.log
    assert [p.seq for p in poses] == list(range(frames))
    assert all(p.stream == "clip" for p in poses)
    for message in poses:
        assert_valid_pose(message, size)
    assert sum(len(p.people) for p in poses) > 0, "the detector found no one in a video of people"
    assert f"captured {frames}, published {frames}, dropped 0" in run.log


def test_the_generated_clip_publishes_people_meta_and_stats(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none",
                   "--wait-subscribers", "1", "--stats-interval", "0.2")
    meta, stats, poses = None, [], []
    with PoseSubscriber(run.endpoint) as subscriber:
        while len(poses) < 48:
            message = subscriber.recv(timeout=60)
            assert message is not None, run.log
            if isinstance(message, MetaMessage):
                meta = message
            elif isinstance(message, StatsMessage):
                stats.append(message)
            else:
                poses.append(message)
        assert run.wait() == 0, run.log
        while (message := subscriber.recv(timeout=2)) is not None:  # the final stats
            if isinstance(message, StatsMessage):
                stats.append(message)
    assert [len(p.people) for p in poses] == [1] * 48
    assert meta.joints[6] == "pelvis" and len(meta.edges) == 14 and "4296.99 mm" in meta.scale
    assert meta.model["weights"] == default_weights_label()
    assert stats and stats[-1].totals["published"] == 48 and sum(stats[-1].drops.values()) == 0
    assert set(stats[-1].fps) == {"capture", "preprocess", "infer", "smooth", "publish"}
    latencies = [s.latency_ms for s in stats if "total" in s.latency_ms]
    assert latencies and all(0 < s["total"]["p50"] <= s["total"]["p95"] for s in latencies)


def test_with_the_flip_test_the_default_model_runs_each_crop_twice_and_the_meta_says_so(pipeline, walker_clip):
    """`--flip-test` on ONNX Runtime: the bundled checkpoint is exported once with the mirrored pass in
    its graph; subscribers read `flip_test` in the model's description."""
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none", "--flip-test",
                   "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["meta", "pose"]) as subscriber:
        meta = subscriber.recv(timeout=120)  # sent to each new subscriber first
        poses = receive_poses(subscriber, 48)
        assert run.wait() == 0, run.log
    assert isinstance(meta, MetaMessage) and meta.model["flip_test"] is True, meta
    assert re.search(r"infer ready: onnxruntime on cpu, .*flip test \(each crop also run mirrored\)", run.log), run.log
    assert [p.seq for p in poses] == list(range(48)) and all(len(p.people) == 1 for p in poses)
    for message in poses:
        assert_valid_pose(message, (640, 360))


def test_the_torch_backend_runs_the_pipeline_on_the_cpu_cutting_crops_where_the_model_runs(pipeline, walker_clip):
    """`--device-crops`: preprocess hands over whole frames and the engine cuts the crops where it runs
    (torch's grid_sample; on CUDA, the GPU); here with `--no-overlap`, each batch run before the next
    is read. The poses before smoothing are those of the same engine on
    the same frames in this process, and close to those of OpenCV's crops (preprocess's default)."""
    from wildpose.engine import default_model, load
    from wildpose.stream import crop

    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none",
                   "--backend", "torch", "--device-crops", "--no-overlap", "--publish-raw", "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["raw", "meta"]) as subscriber:
        poses = receive_poses(subscriber, 48)
        assert run.wait() == 0, run.log
    assert [p.seq for p in poses] == list(range(48)) and all(p.raw for p in poses)
    assert re.search(r"infer ready: torch on cpu, .*eager fp32\n", run.log), run.log  # --no-overlap: one at a time
    published = np.stack([p.people[0].joints2d for p in poses[::4]])  # every 4th frame: inference here is slow

    with av.open(str(walker_clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)][::4]
    with load(default_model.checkpoint_path(), "torch", device="cpu") as engine:
        size = engine.input_size
        height, width = frames[0].shape[:2]
        whole_frame = crop.box_to_affine(crop.square_box(crop.full_frame_box(width, height)), size)[None]
        here = engine.infer_frames(frames, [whole_frame] * len(frames)).joints2d_crop
        opencv = engine.infer_crops(np.stack([crop.cut(frame, whole_frame[0], size) for frame in frames])).joints2d_crop
    same_engine = np.linalg.norm(published - crop.crop_to_frame(here, whole_frame[0]), axis=2)
    assert np.percentile(same_engine, 99) < 0.01, np.percentile(same_engine, [50, 99, 100])
    # OpenCV's crops differ by a grey level here and there (fixed-point interpolation): most joints come
    # out the same (here 95 % to 1e-5 px), and a joint whose heatmap has two near-equal peaks may take
    # the other one (the rest, up to 15 px).
    host = np.linalg.norm(published - crop.crop_to_frame(opencv, whole_frame[0]), axis=2)
    assert np.median(host) < 0.1 and np.percentile(host, 90) < 1.0, np.percentile(host, [50, 90, 99])


def test_with_an_engine_that_overlaps_batches_every_frame_of_every_stream_gets_its_own_pose(pipeline, tmp_path):
    """The torch backend runs batch N while inference reads and submits batch N + 1 (a worker thread
    here, CUDA streams on a GPU): two streams of the same clip, every frame, come out in order, each
    pose that of the same engine on that frame's crop in this process."""
    from wildpose.engine import default_model, load
    from wildpose.stream import crop
    from wildpose.tools import democlip

    clip = democlip.write_clip(tmp_path / "walker-20.mp4", frames=20)
    run = pipeline("--source", f"a={clip}", "--source", f"b={clip}", "--every-frame",
                   "--detector", "none", "--backend", "torch", "--publish-raw", "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["raw", "meta"]) as subscriber:
        poses = receive_poses(subscriber, 40)
        assert run.wait() == 0, run.log
    assert "eager fp32, overlapping batches" in run.log, run.log
    by_stream = {name: [p for p in poses if p.stream == name] for name in ("a", "b")}
    assert all([p.seq for p in mine] == list(range(20)) for mine in by_stream.values()), run.log

    with av.open(str(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)][::3]
    with load(default_model.checkpoint_path(), "torch", device="cpu") as engine:
        size = engine.input_size
        height, width = frames[0].shape[:2]
        whole_frame = crop.box_to_affine(crop.square_box(crop.full_frame_box(width, height)), size)
        here = engine.infer_crops(np.stack([crop.cut(frame, whole_frame, size) for frame in frames])).joints2d_crop
    expected = crop.crop_to_frame(here, whole_frame)
    for mine in by_stream.values():
        published = np.stack([p.people[0].joints2d for p in mine[::3]])
        np.testing.assert_allclose(published, expected, atol=1e-3)


@pytest.mark.faults
def test_two_subscribers_get_the_same_messages_and_a_stalled_one_slows_no_one(pipeline, walker_clip):
    frames = 240  # five passes of the clip: far more than the stalled subscriber's queues hold
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--loop", "--detector", "none",
                   "--wait-subscribers", "3", "--send-hwm", "50")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as first, \
            PoseSubscriber(run.endpoint, topics=["pose"]) as second, \
            PoseSubscriber(run.endpoint, topics=["pose"], receive_hwm=1):  # subscribes, never reads
        a, b = [], []
        deadline = time.monotonic() + 120
        while (len(a) < frames or len(b) < frames) and time.monotonic() < deadline:
            for subscriber, received in ((first, a), (second, b)):
                message = subscriber.recv(timeout=0.01)
                if isinstance(message, PoseMessage) and len(received) < frames:
                    received.append(message)
        assert run.stop(signal.SIGINT) == 0
    assert [m.seq for m in a] == [m.seq for m in b] == list(range(frames))
    assert [m.people[0].joints3d.tolist() for m in a] == [m.people[0].joints3d.tolist() for m in b]
    assert re.search(r"final stats walker: captured \d+, published \d+, dropped 0,", run.log), run.log


@pytest.mark.faults
def test_a_killed_capture_is_restarted_and_the_stream_resumes(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        before = receive_poses(subscriber, 10)
        assert len(before) == 10, run.log
        infer_pid, capture_pid = run.pid_of("infer"), run.pid_of("capture-walker")
        # each stage names itself, so `top` and `ps -o comm` tell the stages apart
        assert [Path(f"/proc/{pid}/comm").read_text().strip() for pid in (infer_pid, capture_pid)] == \
            ["wp-infer", "wp-capture-walk"]  # 15 characters at most
        os.kill(capture_pid, signal.SIGKILL)
        killed = time.monotonic()
        mark = len(run.lines)
        run.wait_for_log(r"capture-walker died \(signal SIGKILL\); restarting", after=0)
        run.pid_of("capture-walker", after=mark)
        after = receive_poses(subscriber, 1)
        recovery = time.monotonic() - killed
        after += receive_poses(subscriber, 9)
    print(f"recovery after the capture was killed (kill -> first new pose): {recovery:.1f} s")
    assert len(after) == 10 and after[0].seq > before[-1].seq
    assert [m.seq for m in after] == sorted(m.seq for m in after)
    os.kill(infer_pid, 0)  # the other stages kept running
    assert run.stop(signal.SIGINT) == 0
    assert "restarts 1" in run.log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_within_two_seconds_with_final_stats(pipeline, walker_clip, sig):
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        assert len(receive_poses(subscriber, 5)) == 5, run.log
        assert run.stop(sig) == 0
    # every stage left on its own within the supervisor's grace (1.5 s); none had to be terminated
    assert "did not stop in time" not in run.log
    assert re.search(r"all stages stopped in [01]\.\d+ s", run.log), run.log
    assert f"stopped by signal {signal.Signals(sig).name}" in run.log
    assert "final stats walker: captured" in run.log


CLIP_FPS = 24  # the served walker clip's frame rate, as an MP4 and as HLS


def hls_playlist(clip: Path, folder: Path) -> Path:
    """`clip` as a finished HLS playlist of one-second MPEG-TS segments (video on demand)."""
    playlist = folder / "walker.m3u8"
    with av.open(str(clip)) as source, av.open(str(playlist), "w", format="hls",
                                               options={"hls_time": "1", "hls_list_size": "0"}) as out:
        stream = out.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for frame in source.decode(video=0):
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return playlist


@pytest.mark.parametrize("served", ["mp4", "hls"])
def test_an_http_source_streams_and_is_reopened_when_it_ends(pipeline, tmp_path, served):
    # Index first, as streamed MP4 is: Python's test server cannot serve the ranges a seek would need.
    clip = democlip.write_clip(tmp_path / "walker.mp4", fps=CLIP_FPS, faststart=True)
    if served == "hls":
        clip = hls_playlist(clip, tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{clip.name}"
        run = pipeline("--source", f"web={url}", "--detector", "none", "--wait-subscribers", "1")
        with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
            poses = receive_poses(subscriber, 60)  # more than the clip has: it must be fetched again
        assert [p.seq for p in poses] == sorted(p.seq for p in poses) and len(poses) == 60, run.log
        assert run.stop(signal.SIGINT) == 0
        assert "web: http://127.0.0.1" in run.log and "ended the stream; reconnecting" in run.log
        # A recording behind a URL plays at its pace, as a file does: once it was decoded at once and
        # three frames in four were dropped as stale. How many are dropped depends on how fast this
        # machine's inference keeps up; how fast frames are captured must not: at most the clip's rate.
        stats = re.search(r"final stats web: captured (\d+), .* over ([\d.]+) s", run.log)
        captured, seconds = int(stats[1]), float(stats[2])
        print(f"{served}: captured {captured} frames in {seconds} s; the clip has {CLIP_FPS} frames/s")
        assert captured <= CLIP_FPS * seconds, run.log
    finally:
        server.shutdown()


class LiveHls:
    """A live HLS channel: `clip` looped and encoded in real time into one-second MPEG-TS segments,
    the playlist holding the last four (no end tag: a live stream, as a camera's HLS output or a
    broadcast), served over HTTP. Players fetch a segment only once it is whole, so frames come in
    one-second bursts. `fetches` records each segment fetched as (its number, the newest number the
    playlist listed at that moment): how far behind the live edge the reader is."""

    def __init__(self, clip: Path, folder: Path, fps: int = 24) -> None:
        self.folder, self.fps, self.stop = folder, fps, threading.Event()
        self.fetches: list[tuple[int, int]] = []
        with av.open(str(clip)) as source:
            self.frames = [frame.to_ndarray(format="rgb24") for frame in source.decode(video=0)]
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.writer.start()
        channel = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                segment = re.fullmatch(r"/live(\d+)\.ts", self.path)
                if segment:
                    channel.fetches.append((int(segment.group(1)), channel.newest_listed()))
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/live.m3u8"
        deadline = time.monotonic() + 20
        while len(list(folder.glob("live*.ts"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)

    def _write(self) -> None:
        options = {"hls_time": "1", "hls_list_size": "4", "hls_flags": "delete_segments"}
        with av.open(str(self.folder / "live.m3u8"), "w", format="hls", options=options) as out:
            stream = out.add_stream("libx264", rate=self.fps, options={"g": str(self.fps), "tune": "zerolatency"})
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            started = time.monotonic()
            for index in range(100_000):
                if self.stop.is_set():
                    break
                frame = av.VideoFrame.from_ndarray(self.frames[index % len(self.frames)], format="rgb24")
                frame.pts = index
                out.mux(stream.encode(frame))
                time.sleep(max(0.0, started + (index + 1) / self.fps - time.monotonic()))
            out.mux(stream.encode())

    def newest_listed(self) -> int:
        """The number of the newest segment the playlist lists now."""
        for _ in range(50):  # the muxer rewrites the playlist: it may be caught empty
            listed = re.findall(r"^live(\d+)\.ts$", (self.folder / "live.m3u8").read_text(), re.M)
            if listed:
                return int(listed[-1])
            time.sleep(0.01)
        raise AssertionError("the live playlist lists no segment")

    def close(self) -> None:
        self.stop.set()
        self.writer.join(timeout=10)
        self.server.shutdown()


def test_a_live_hls_stream_plays_at_its_pace_not_in_bursts(pipeline, walker_clip, tmp_path):
    """Each segment arrives whole: decoded as it came, all but the last frame of each were dropped as stale.
    Played by its timestamps nearly all go out, one segment behind the live edge: players start three
    segments back (FFmpeg's default too), which kept every pose two segments later than it need be."""
    # 12 frames/s: a machine loaded by other tests still keeps up, so drops measure bursts, not the CPU
    channel = LiveHls(walker_clip, tmp_path, fps=12)
    try:
        run = pipeline("--source", f"live={channel.url}", "--detector", "none", "--wait-subscribers", "1")
        with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
            poses = receive_poses(subscriber, 60, timeout=60)  # five seconds of the channel
        assert len(poses) == 60, run.log
        assert run.stop(signal.SIGINT) == 0
    finally:
        channel.close()
    captured, published, dropped = map(int, re.search(
        r"final stats live: captured (\d+), published (\d+), dropped (\d+)", run.log).groups())
    print(f"live HLS: captured {captured}, published {published}, dropped {dropped}")
    assert dropped < 0.3 * captured, run.log
    # the poses come at the channel's rate: no gap near a segment's length
    gaps = np.diff([p.t_publish for p in poses[12:]])
    print(f"live HLS: a pose every {np.median(gaps) * 1000:.0f} ms (median), longest gap {gaps.max() * 1000:.0f} ms")
    assert np.median(gaps) > 0.02 and np.percentile(gaps, 99) < 0.5, gaps
    # one segment behind the newest listed, the margin that rides out reloading the playlist
    print(f"live HLS: segments fetched (number, newest listed): {channel.fetches}")
    assert all(newest - fetched <= 1 for fetched, newest in channel.fetches), channel.fetches


class _MjpegCamera(http.server.BaseHTTPRequestHandler):
    """An IP camera's MJPEG feed: JPEG frames in a multipart/x-mixed-replace response, at 24 frames/s."""

    jpegs: list[bytes] = []

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for index in range(10_000):
                jpeg = self.jpegs[index % len(self.jpegs)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                 % (len(jpeg), jpeg))
                time.sleep(1 / 24)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


def test_an_ip_cameras_mjpeg_feed_over_http_streams(pipeline, walker_clip):
    import cv2

    with av.open(str(walker_clip)) as container:
        jpegs = [cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"))[1].tobytes()
                 for frame in container.decode(video=0)]
    handler = type("Camera", (_MjpegCamera,), {"jpegs": jpegs})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = pipeline("--source", f"door=http://127.0.0.1:{server.server_port}/video.mjpg", "--detector", "none",
                       "--wait-subscribers", "1")
        with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
            poses = receive_poses(subscriber, 30)
        assert len(poses) == 30, run.log
        for pose in poses:
            assert_valid_pose(pose, (640, 360))
        assert [p.seq for p in poses] == sorted(p.seq for p in poses)
        assert run.stop(signal.SIGINT) == 0
    finally:
        server.shutdown()


def test_subscribe_piped_into_head_ends_quietly_when_head_does(pipeline, walker_clip):
    """`wildpose subscribe | head -3` once ended in a BrokenPipeError traceback."""
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none")
    subscribe = subprocess.Popen([sys.executable, "-m", "wildpose.tools.cli", "subscribe", "--endpoint", run.endpoint,
                                  "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "WILDPOSE_DEBUG": ""})
    try:
        lines = [subscribe.stdout.readline() for _ in range(3)]
        assert all(line.startswith(("pose walker", "meta ", "stats walker")) for line in lines), lines
        subscribe.stdout.close()  # what `head` does once it has its lines
        assert subscribe.wait(timeout=30) == 128 + signal.SIGPIPE
        assert subscribe.stderr.read() == ""
    finally:
        subscribe.kill()


def test_two_sources_in_one_run_over_ipc_reach_the_subscribe_command(tmp_path, walker_clip):
    endpoint = f"ipc://{tmp_path}/poses.sock"
    run = subprocess.Popen(
        [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"left={walker_clip}",
         "--source", f"right={walker_clip}", "--every-frame", "--detector", "none", "--publish", endpoint,
         "--wait-subscribers", "1"], stderr=subprocess.PIPE, text=True)
    try:
        subscribe = subprocess.run(
            [sys.executable, "-m", "wildpose.tools.cli", "subscribe", "--endpoint", endpoint, "--json",
             "--topics", "pose", "--count", "96", "--timeout", "60"], capture_output=True, text=True, timeout=120)
        _, log = run.communicate(timeout=60)
    finally:
        run.kill()
    assert subscribe.returncode == 0, subscribe.stderr
    messages = [json.loads(line) for line in subscribe.stdout.splitlines()]
    for stream in ("left", "right"):
        seqs = [m["seq"] for m in messages if m["stream"] == stream]
        assert seqs == list(range(48)), f"{stream}: {seqs}"
    assert all(m["kind"] == "pose" and len(m["people"]) == 1 for m in messages)
    assert run.returncode == 0, log
