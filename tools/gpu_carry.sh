#!/usr/bin/env bash
# Fills .carry/ (git-ignored) with what a lent GPU machine lacks, for tools/gpu_check.sh and
# tools/gpu_synthpose.sh (the machine gets the checkout and the paths named in `carry`, 64 MiB in all):
#   .carry/wheels        PyAV, pyzmq, python-osc, tqdm for its Python 3.12 (36 MB)
#   .carry/gpu           the streams clip (people-640x480-30fps.mp4: the first 300 frames of the Intel clip,
#                        cropped to 4:3, 640x480, re-timed to 30 frames/s), pose_squats.mp4, yolox_nano.onnx
#   .carry/wheels-train  tqdm alone, and .carry/cmu_mocap: the CMU BVH files, for gpu_synthpose.sh
# Carry .carry/wheels and .carry/gpu for gpu_check.sh, .carry/wheels-train and .carry/cmu_mocap for
# gpu_synthpose.sh. Needs the checkout's .venv (make venv) and ../shared/data beside it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="$ROOT/../shared/data"
[ -d "$SHARED" ] || { echo "no ../shared/data beside the checkout: the clips, detector and mocap come from there" >&2; exit 2; }
[ -x "$ROOT/.venv/bin/python" ] || { echo "no .venv: run 'make venv' first (the clip is made with PyAV)" >&2; exit 2; }
cd "$ROOT"
mkdir -p .carry/wheels .carry/wheels-train .carry/gpu
python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .carry/wheels av==18.1.0 pyzmq==27.3.0 python-osc tqdm
cp .carry/wheels/tqdm-*.whl .carry/wheels-train/
cp "$SHARED/video/pose_squats.mp4" "$SHARED/models/yolox_nano.onnx" .carry/gpu/
rm -rf .carry/cmu_mocap && cp -r "$SHARED/cmu_mocap" .carry/cmu_mocap
.venv/bin/python - "$SHARED/video/one-by-one-person-detection.mp4" .carry/gpu/people-640x480-30fps.mp4 <<'PY'
import sys

import av
import cv2

source, target = sys.argv[1:]
with av.open(source) as clip, av.open(target, "w") as out:
    stream = out.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
    for count, frame in enumerate(clip.decode(video=0)):
        if count == 300:
            break
        image = frame.to_ndarray(format="rgb24")
        height, width = image.shape[:2]
        left = (width - height * 4 // 3) // 2
        image = cv2.resize(image[:, left:left + height * 4 // 3], (640, 480), interpolation=cv2.INTER_AREA)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
PY
du -sh .carry/*
