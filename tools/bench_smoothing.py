"""`wildpose bench --smoothing`: jitter and lag of the One Euro filter on real human motion.

The CMU motion capture in `../shared/data/cmu_mocap` is resampled to 30 frames/s and seen by a fixed
camera 4 m beyond the subject's farthest excursion (its focal length scaled so the person is about
400 px tall): its 2D projection (pixels) and its root-relative 3D pose in camera axes (mm) are the
truth. Gaussian noise like a pose network's frame-to-frame jitter is added, and the noisy signals go
through the filter on their timestamps, as in the pipeline. Reported per space:

- jitter: RMS over joints and frames of the frame-to-frame change of the error, |e_t - e_(t-1)|
  where e = estimate - truth (the shaking a viewer sees; 0 for a perfectly steady estimate);
- lag: the delay tau that best aligns the output with the truth (least squares over tau in 0-300 ms,
  1 ms steps, truth linearly interpolated);
- RMSE: root-mean-square position error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError
from wildpose.stream.config import SmoothingConfig
from wildpose.stream.one_euro import OneEuroFilter
from wildpose.tools.bench import markdown_table
from wildpose.training import joints

log = logging.getLogger(__name__)

DEFAULT_MOCAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu_mocap"  # beside the checkout
FPS = 30.0
NOISE_2D_PX = 3.0  # for a person about 400 px tall in a 640x480 view
NOISE_3D_MM = 20.0
_SEED = 0


@dataclass(frozen=True)
class Motion:
    name: str
    joints2d: np.ndarray  # (F, J, 2) px
    joints3d: np.ndarray  # (F, J, 3) mm, root-relative, camera axes


@dataclass(frozen=True)
class SmoothingResult:
    space: str
    unit: str
    jitter_raw: float
    jitter_filtered: float
    lag_filtered_ms: float
    rmse_raw: float
    rmse_filtered: float


def load_motions(mocap_dir: Path) -> list[Motion]:
    """Every CMU sequence at 30 frames/s, seen by a fixed camera at least 4 m from the subject."""
    from wildpose.training.synthpose import cmu
    from wildpose.training.synthpose.camera import Camera

    files = sorted(Path(mocap_dir).glob("*.bvh"))
    if not files:
        raise ConfigError(f"no .bvh files in {mocap_dir}; pass --mocap DIR (the CMU files of ../shared/data)")
    motions = []
    for path in files:
        motion = cmu.load_motion(path, fps=FPS)
        world = motion.joints
        centre = world[:, joints.ROOT].mean(axis=0)
        facing = world[0, joints.INDEX["l_hip"]] - world[0, joints.INDEX["r_hip"]]
        facing = np.array([-facing[2], 0.0, facing[0]])  # perpendicular to the hips, horizontal
        roaming = np.max(np.linalg.norm((world[:, joints.ROOT] - centre)[:, [0, 2]], axis=1))
        distance = 4000.0 + roaming  # a subject that walks about stays in front of the camera
        camera = Camera.orbit(centre, facing, distance_mm=distance, height_mm=centre[1], yaw_deg=20.0,
                              focal_px=600.0 * distance / 4000.0, width=640, height=480)
        in_camera = camera.world_to_camera(world)
        pixels = camera.project(in_camera)
        motions.append(Motion(path.stem, pixels, in_camera - in_camera[:, joints.ROOT:joints.ROOT + 1]))
    return motions


def evaluate(motions: list[Motion], config: SmoothingConfig) -> list[SmoothingResult]:
    rng = np.random.default_rng(_SEED)
    results = []
    for space, unit, noise, cutoff, beta in (
            ("2D", "px", NOISE_2D_PX, config.min_cutoff_2d, config.beta_2d),
            ("3D", "mm", NOISE_3D_MM, config.min_cutoff_3d, config.beta_3d)):
        truths, raws, outs = [], [], []
        for motion in motions:
            truth = motion.joints2d if space == "2D" else motion.joints3d
            raw = truth + rng.normal(0.0, noise, truth.shape)
            if space == "3D":
                raw[:, joints.ROOT] = 0.0  # the root is exact by construction
            smoother = OneEuroFilter(cutoff, beta, config.d_cutoff)
            out = np.stack([smoother(frame, t / FPS) for t, frame in enumerate(raw)])
            truths.append(truth)
            raws.append(raw)
            outs.append(out)
        results.append(SmoothingResult(
            space=space, unit=unit, jitter_raw=_jitter(truths, raws), jitter_filtered=_jitter(truths, outs),
            lag_filtered_ms=_lag_ms(truths, outs), rmse_raw=_rmse(truths, raws), rmse_filtered=_rmse(truths, outs)))
    return results


def _jitter(truths, estimates) -> float:
    changes = [np.diff(e - t, axis=0) for t, e in zip(truths, estimates, strict=True)]
    return float(np.sqrt(np.mean(np.concatenate([np.sum(c ** 2, axis=-1).ravel() for c in changes]))))


def _rmse(truths, estimates) -> float:
    errors = [np.sum((e - t) ** 2, axis=-1).ravel() for t, e in zip(truths, estimates, strict=True)]
    return float(np.sqrt(np.mean(np.concatenate(errors))))


def _lag_ms(truths, estimates) -> float:
    """The delay (ms) minimising the squared error between estimate(t) and truth(t - delay)."""
    delays = np.arange(0, 301) / 1000.0
    costs = np.zeros(len(delays))
    for truth, estimate in zip(truths, estimates, strict=True):
        times = np.arange(len(truth)) / FPS
        flat_truth = truth.reshape(len(truth), -1)
        flat_estimate = estimate.reshape(len(estimate), -1)
        skip = int(np.ceil(delays[-1] * FPS)) + 1  # frames whose delayed truth lies before the start
        for i, delay in enumerate(delays):
            shifted = np.stack([np.interp(times[skip:] - delay, times, flat_truth[:, k])
                                for k in range(flat_truth.shape[1])], axis=1)
            costs[i] += np.sum((flat_estimate[skip:] - shifted) ** 2)
    return float(delays[int(np.argmin(costs))] * 1000.0)


def format_table(results: list[SmoothingResult], config: SmoothingConfig) -> str:
    headers = ["space", "noise added", "jitter raw", "jitter filtered", "jitter reduction", "lag filtered ms",
               "RMSE raw", "RMSE filtered"]
    body = []
    for r in results:
        noise = NOISE_2D_PX if r.space == "2D" else NOISE_3D_MM
        body.append([r.space, f"{noise:g} {r.unit}", f"{r.jitter_raw:.2f} {r.unit}",
                     f"{r.jitter_filtered:.2f} {r.unit}", f"{1 - r.jitter_filtered / r.jitter_raw:.0%}",
                     f"{r.lag_filtered_ms:.0f}", f"{r.rmse_raw:.2f} {r.unit}", f"{r.rmse_filtered:.2f} {r.unit}"])
    parameters = (f"min_cutoff 2D {config.min_cutoff_2d:g} Hz, beta 2D {config.beta_2d:g}, min_cutoff 3D "
                  f"{config.min_cutoff_3d:g} Hz, beta 3D {config.beta_3d:g}, d_cutoff {config.d_cutoff:g} Hz")
    return markdown_table(headers, body) + f"\n(One Euro: {parameters}; CMU mocap at {FPS:g} frames/s)"
