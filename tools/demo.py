"""`wildpose demo`: the engine on a few frames of the project's own clip, one line per frame.

Real work end to end: the clip is encoded with PyAV, decoded again, each whole frame is cropped to
the model input, inferred, decoded and assembled into a metric 3D pose.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import av
import numpy as np

from wildpose.engine import load
from wildpose.engine.cache import cache_dir
from wildpose.stream import crop
from wildpose.tools import democlip, logs
from wildpose.training import joints, pose3d

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    frames: int = 12
    model: str | None = None
    backend: str = "auto"
    threads: int | None = None


def run(config: DemoConfig) -> int:
    clip = cache_dir("demo") / "walker.mp4"
    if not clip.is_file():
        democlip.write_clip(clip)
    engine = load(config.model, config.backend, threads=config.threads)
    label = engine.metadata.weights
    logs.label_untrained(label)
    log.info("demo: %s on %s", engine.describe(), clip)
    print(f"# {clip.name} through {engine.name} ({label}); 3D scale: {pose3d.describe_scale()}")
    times = []
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= config.frames:
                break
            image = frame.to_ndarray(format="rgb24")
            affine = crop.box_to_affine(crop.full_frame_box(image.shape[1], image.shape[0]),
                                        engine.input_size)
            batch = crop.to_model_input(crop.cut(image, affine, engine.input_size)[None])
            start = time.perf_counter()
            out = engine.infer(batch)
            times.append(time.perf_counter() - start)
            joints2d = crop.crop_to_frame(out.joints2d_crop[0], affine)
            joints3d = pose3d.assemble(out.joints2d_crop, out.depth, engine.input_size)[0]
            pelvis = joints2d[joints.ROOT]
            print(f"frame {index:3d} t={float(frame.time):.3f}s pelvis=({pelvis[0]:.1f}, {pelvis[1]:.1f}) px "
                  f"mean conf={out.conf[0].mean():.3f} 3D extent={np.ptp(joints3d, axis=0).max():.0f} mm "
                  f"infer={times[-1] * 1000:.1f} ms ({label})")
    print(f"# {len(times)} frames, median inference {np.median(times) * 1000:.1f} ms "
          f"({1 / np.median(times):.1f} frames/s) ({label})")
    return 0
