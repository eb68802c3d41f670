"""Calibration crops for INT8 engines: whole frames of a video, cut as the pipeline cuts crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError
from wildpose.stream import crop


def calibration_batches(video: str | Path, input_size: int, count: int = 256, batch: int = 16) -> list[np.ndarray]:
    """Whole-frame crops of up to `count` frames of a video (real footage, or a SynthPose render such
    as the bundled demo clip) as float32 batches of `batch`, spread over the whole clip."""
    import av

    from wildpose.stream.sources import to_rgb

    try:
        with av.open(str(video)) as container:  # upright, as the pipeline sees them; full size
            frames = [to_rgb(frame, max_side=1 << 16) for frame in container.decode(video=0)]
    except (av.error.FFmpegError, OSError) as exc:
        raise ConfigError(f"cannot read calibration video {video}: {exc}") from None
    if len(frames) < batch:
        raise ConfigError(f"calibration video {video} has {len(frames)} frames; INT8 needs at least {batch}")
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames)) // batch * batch).round().astype(int)
    crops = []
    for index in picks:
        image = frames[index]
        affine = crop.box_to_affine(crop.full_frame_box(image.shape[1], image.shape[0]), input_size)
        crops.append(crop.cut(image, affine, input_size))
    model_input = crop.to_model_input(np.stack(crops))
    return [model_input[i:i + batch] for i in range(0, len(model_input), batch)]
