"""Decoded frames come out as players show them: a phone's portrait clip is stored landscape with a
rotation in its MP4 track header, which FFmpeg's decoders leave to the player; a raw stream without
timestamps plays at its declared rate."""

import struct
from pathlib import Path

import av
import numpy as np
import pytest
from support import wildpose

from wildpose.stream import sources

# The track header's display matrix (16.16 fixed point; 2.30 for w) an upright phone writes: the
# picture is shown a quarter turn clockwise, as iPhones and Android phones record portrait video.
PORTRAIT_MATRIX = (0, 1 << 16, 0, -(1 << 16), 0, 0)


def with_display_matrix(clip: Path, out: Path, matrix: tuple[int, ...]) -> Path:
    """`clip` byte for byte, but for its video track header's display matrix."""
    data = bytearray(clip.read_bytes())
    box = data.find(b"tkhd")
    version = data[box + 4]
    start = box + 8 + (32 if version == 1 else 20) + 16  # times, track id, duration; reserved, layer, volume
    height = struct.unpack(">I", data[start + 40:start + 44])[0]
    data[start:start + 36] = struct.pack(">9i", *matrix, height, 0, 1 << 30)
    out.write_bytes(bytes(data))
    return out


def first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


@pytest.fixture(scope="module")
def portrait_clip(walker_clip, tmp_path_factory) -> Path:
    return with_display_matrix(walker_clip, tmp_path_factory.mktemp("phone") / "portrait.mp4", PORTRAIT_MATRIX)


def test_a_portrait_phone_clip_is_decoded_upright(walker_clip, portrait_clip):
    stored = first_frame(walker_clip).to_ndarray(format="rgb24")
    upright = sources.to_rgb(first_frame(portrait_clip), max_side=1920)
    assert stored.shape == (360, 640, 3) and upright.shape == (640, 360, 3)
    assert np.array_equal(upright, np.rot90(stored, -1))  # a quarter turn clockwise, as players show it
    assert upright.flags.c_contiguous


def test_a_clip_without_rotation_is_left_as_stored(walker_clip):
    frame = first_frame(walker_clip)
    assert np.array_equal(sources.to_rgb(frame, max_side=1920), frame.to_ndarray(format="rgb24"))


def test_a_portrait_clip_is_scaled_by_its_longer_side_and_turned(portrait_clip):
    assert sources.to_rgb(first_frame(portrait_clip), max_side=320).shape == (320, 180, 3)


def test_the_pipeline_sees_a_portrait_clip_in_portrait(portrait_clip, tmp_path):
    result = wildpose("run", "--source", str(portrait_clip), "--every-frame", "--detector", "none",
                      "--publish", f"ipc://{tmp_path}/portrait.sock")
    assert result.returncode == 0, result.stderr
    assert f"{portrait_clip}, 360x640, camera assumed" in result.stderr
    assert "captured 48, published 48, dropped 0" in result.stderr


@pytest.fixture(scope="module")
def raw_h264(walker_clip, tmp_path_factory) -> Path:
    """The clip as a raw H.264 elementary stream, as a Raspberry Pi camera records it: no timestamps."""
    path = tmp_path_factory.mktemp("raw") / "walker.h264"
    with av.open(str(walker_clip)) as source, av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for frame in source.decode(video=0):
            frame.pts = None
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_a_raw_stream_without_timestamps_plays_at_its_declared_rate(raw_h264, tmp_path):
    """Its frames once took their arrival times: a paced run decoded it at once and dropped most frames
    as stale, and the smoothing filters and the overlay video saw decoding times."""
    with av.open(str(raw_h264)) as container:
        rate = container.streams.video[0].average_rate
        assert rate and all(frame.time is None for frame in container.decode(video=0))
    overlay = tmp_path / "overlay.mp4"
    result = wildpose("run", "--source", str(raw_h264), "--every-frame", "--detector", "none",
                      "--overlay", str(overlay), "--publish", f"ipc://{tmp_path}/raw.sock")
    assert result.returncode == 0, result.stderr
    with av.open(str(overlay)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == 48
    assert times == pytest.approx([i / float(rate) for i in range(48)], abs=1e-3)  # the overlay keeps ms


def test_a_streams_converter_gives_pyavs_pixels_for_every_frame_even_when_the_size_changes(shared_data):
    # one converter (one swscale context) for a whole stream; a live source may come back at a new size
    clips = [shared_data / "video" / "street_people_720p50.avi", shared_data / "video" / "pose_squats.mp4"]
    to_rgb, scaled = sources.RgbConverter(max_side=1920, threads=1), sources.RgbConverter(max_side=320, threads=2)
    seen = 0
    for clip in clips:
        with av.open(str(clip)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index == 12:
                    break
                assert np.array_equal(to_rgb(frame), frame.to_ndarray(format="rgb24"))
                width, height = (320, 180) if frame.width > frame.height else (180, 320)
                assert np.array_equal(scaled(frame), frame.to_ndarray(width=width, height=height, format="rgb24"))
                seen += 1
    assert seen == 24


def test_the_decoder_runs_on_the_threads_it_is_given(shared_data):
    with av.open(str(shared_data / "video" / "street_people_720p50.avi")) as container:
        next(sources.decoded_frames(container, on_decode_error=print, threads=1))
        codec = container.streams.video[0].codec_context
        assert (codec.thread_type.name, codec.thread_count) == ("SLICE", 1)
