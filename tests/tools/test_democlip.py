"""The demo clip: a SynthPose-rendered take that the default HOG detector finds, encoded with exact
timestamps, the same bytes on every run; and the stick-figure fallback without the mocap."""

import av
import numpy as np
import pytest

from wildpose.errors import ConfigError, DatasetError
from wildpose.stream.detect import HogDetector
from wildpose.tools import democlip
from wildpose.training.synthpose import clip


@pytest.fixture(scope="module")
def mocap(shared_data):
    return shared_data / "cmu_mocap"


def test_hog_finds_the_rendered_person_in_most_frames(mocap):
    """Every 12th frame of the full 8 s demo take at 640x360: HOG's box must overlap the person's."""
    samples = list(clip.render_clip(democlip.RENDERED_FRAMES, clip.ClipConfig(mocap_dir=str(mocap))))[::12]
    detector = HogDetector()
    hits = 0
    for sample in samples:
        x0, y0, x1, y1 = sample.box
        for found in detector.detect(sample.image):
            bx0, by0, bx1, by1 = found.box
            if min(x1, bx1) > max(x0, bx0) and min(y1, by1) > max(y0, by0):
                hits += 1
                break
    print(f"HOG found the person in {hits} of {len(samples)} frames")
    assert len(samples) == 20 and hits >= 0.9 * len(samples)


def test_the_rendered_clip_has_exact_timestamps_and_the_same_bytes_every_time(mocap, tmp_path):
    options = {"frames": 6, "width": 160, "height": 96, "fps": 30, "mocap": mocap}
    first = democlip.write_rendered_clip(tmp_path / "a.mp4", **options)
    second = democlip.write_rendered_clip(tmp_path / "b.mp4", faststart=True, **options)
    again = democlip.write_rendered_clip(tmp_path / "c.mp4", **options)
    assert first.read_bytes() == again.read_bytes()
    for path in (first, second):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = list(container.decode(stream))
            assert (stream.width, stream.height) == (160, 96)
            assert [float(f.pts * f.time_base) for f in frames] == pytest.approx([i / 30 for i in range(6)], abs=1e-9)
    assert not list(tmp_path.glob("*.partial*"))


def test_the_bundled_demo_clip_is_the_rendered_take_byte_for_byte(mocap, tmp_path):
    """The shipped clip is exactly what the renderer makes today, so it cannot drift from the code."""
    rendered = democlip.write_rendered_clip(tmp_path / "demo.mp4", mocap=mocap)
    assert democlip.BUNDLED_CLIP.read_bytes() == rendered.read_bytes()


def test_the_demo_plays_the_bundled_clip_without_rendering(tmp_path, monkeypatch):
    def no_rendering(*args, **kwargs):
        raise AssertionError("the demo rendered a clip although one is bundled")

    monkeypatch.setattr(democlip, "write_rendered_clip", no_rendering)
    path = democlip.demo_clip(tmp_path)
    assert path == democlip.BUNDLED_CLIP
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (640, 360)
        assert sum(1 for _ in container.decode(stream)) == democlip.RENDERED_FRAMES


def test_the_demo_falls_back_to_the_stick_figure_without_the_mocap(tmp_path, monkeypatch):
    monkeypatch.setattr(democlip, "BUNDLED_CLIP", tmp_path / "not-installed.mp4")

    def no_mocap(*args, **kwargs):
        raise DatasetError("clip: motion capture file /nowhere/131_02.bvh not found")

    monkeypatch.setattr(democlip, "write_rendered_clip", no_mocap)
    path = democlip.demo_clip(tmp_path)
    assert path.name == "walker.mp4" and path.is_file()


@pytest.mark.parametrize("changes, message", [
    ({"take": "02_01"}, "held-out wild test take"),
    ({"person_fraction": 0.95}, "person_fraction must be 0.1..0.9"),
    ({"fps": 0}, "fps 1..120"),
])
def test_bad_clip_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        clip.ClipConfig(**changes)


def test_a_clip_longer_than_the_take_is_refused_with_the_limit(mocap):
    with pytest.raises(ConfigError, match=r"ask for at most \d+"):
        next(clip.render_clip(10_000, clip.ClipConfig(mocap_dir=str(mocap))))


def test_frames_are_deterministic(mocap):
    config = clip.ClipConfig(mocap_dir=str(mocap), width=128, height=72)
    first = [s.image for s in clip.render_clip(3, config)]
    second = [s.image for s in clip.render_clip(3, config)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], first[2])  # the figure moves
